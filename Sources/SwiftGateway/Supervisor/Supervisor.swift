import CSwiftGatewayLinux
import Logging

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Keeps a group's workers running: starts `processes` of them, replaces each one that exits
/// (with backoff when they keep dying young), enforces the group's limits on them from outside
/// (`Supervisor+Limits.swift`), rolls them onto a new build of the program
/// (`Supervisor+Rolling.swift`), starts and stops extra workers with the load
/// (`Supervisor+Scaling.swift`), logs every exit, recycle, roll and scale, publishes what it
/// knows of each on the scoreboard, and drains them on SIGTERM.
///
/// It runs on one thread as a `poll` loop over the signal pipe (signals and child exits): a
/// supervisor must stay responsive whatever its workers do, so it does no other work, holds no
/// locks and never waits for a worker.
///
/// Workers leave in one of three ways besides dying. Recycled (a limit) or retired (a rolling
/// restart, scaling down): the worker is sent SIGTERM (it stops accepting, closes its idle
/// connections with a notice Apache answers by sending their next request elsewhere, and finishes
/// its requests in flight) and drains while the others serve; still there a second after
/// `graceful-timeout`, it is killed. Killed: what cannot wait — a worker above 1.5 ×
/// `memory-limit`, or one not accepting `startup-timeout` after it was spawned.
final class Supervisor {
    struct WorkerSlot {
        var pid: pid_t?
        /// Its entry on the scoreboard, while it has a worker.
        var entry: Int?
        var startedAt: Double = 0
        /// When its next worker starts; nil: not due (an extra slot the load does not need).
        var restartAt: Double?
        var backoff = RestartBackoff()
        /// Whether the next worker is the slot's first (started with the group: staggered limits).
        var firstOfSlot = true
        var limits = WorkerLimits()
        /// Its worker was seen accepting.
        var isReady = false
        var sample = ProcessSample()
        /// Why the slot's previous worker ended, for the scoreboard.
        var lastExit = ""
        /// A request its worker could not end after request-timeout: due for a recycle.
        var stuck: RecycleReason?
        /// Its worker is being killed on purpose: what to say of it, and whether it counts as a
        /// failed start (backoff) rather than a kill to replace at once.
        var killedBecause: (note: String, failedStart: Bool, counter: RestartCounter)?
        /// The build its worker runs (`ProgramImage.generation`).
        var generation = 0

        /// Whether the slot has a worker, or one due to start.
        var isActive: Bool { self.pid != nil || self.restartAt != nil }
    }

    /// A worker that left its slot and finishes its requests.
    struct DrainingWorker {
        enum Cause { case recycle, roll, scaleDown }
        let pid: pid_t
        let slot: Int
        let entry: Int?
        let cause: Cause
        var killAt: Double
        var killed = false
    }

    /// A worker above 1.5 × memory-limit: told to stop accepting, killed once at most one
    /// request (the one that grew, most likely) remains, or at `killAt`.
    struct CondemnedWorker {
        let pid: pid_t
        let entry: Int?
        let killAt: Double
    }

    /// How often the limits are checked at least; while workers serve requests under
    /// `maximum-requests` or `memory-limit`, `busyCheckInterval`; while a due recycle waits for a
    /// replacement to accept, or a condemned worker for its last requests, `readinessCheckInterval`
    /// (a worker's exit wakes the loop by itself).
    static let checkInterval = 0.5
    static let busyCheckInterval = 0.01
    /// Under `maximum-requests`, while no request was served since the last look: load that
    /// begins is noticed soon, without waking often on an idle group.
    static let requestCountInterval = 0.05
    static let startingCheckInterval = 0.05
    static let readinessCheckInterval = 0.001
    /// A draining worker gives up on its requests at `graceful-timeout` by itself; one still
    /// there this much later is killed.
    static let killGrace = 1.0
    /// A worker condemned for its memory has this long to finish its other requests.
    static let condemnedGrace = 1.0
    /// A request running this long in a condemned worker is taken for the one that grew.
    static let culpritAge: Int64 = 100_000_000
    /// How often the figures on the scoreboard are sampled when no limit needs them sooner.
    static let sampleInterval = 0.5
    /// The hard CPU limit comes this many seconds after `cpu-time-limit` (the soft one).
    static let cpuHardLimitGrace = 5
    /// A worker due while every scoreboard entry is taken waits this long before it looks again.
    static let entryWaitInterval = 0.05

    let settings: GroupSettings
    let policy: RecyclePolicy
    var spawner: WorkerSpawner
    var scoreboard: GroupScoreboard?
    let logger: Logger
    private let parentPID = getppid()
    var slots: [WorkerSlot]
    var draining: [DrainingWorker] = []
    var condemned: [CondemnedWorker] = []
    /// Workers killed before they had a slot (a new build's worker that did not accept), with
    /// their scoreboard entries, kept from other workers until they are reaped: reaped quietly.
    var strays: [pid_t: Int] = [:]
    /// Workers of a previous supervisor of the group still draining on the board this one took
    /// over (Apache restarted the supervisor), with their entries: kept from new workers until
    /// they are gone (they are not this supervisor's children: looked for, not reaped).
    var orphans: [pid_t: Int] = [:]
    var requestTimeouts: RequestTimeoutWatch
    /// When the next look at the limits should come, if sooner than `checkInterval`.
    var nextCheckInterval: Double?
    /// Requests served by the group at the last look, to see whether any were served since.
    var servedAtLastCheck = 0
    var lastSampleAt = 0.0
    /// What each slot's worker published at the last look at the limits (nil: no worker, or no board).
    var lastActivities: [WorkerActivity?] = []

    /// The build new workers start from.
    var image: ProgramImage
    var watch: ProgramWatch
    var roll: RollingRestart?
    /// A roll asked for while one runs: begins when it ends.
    var pendingRoll: RollingRestart.Trigger?
    /// The last build whose rolling restart failed: not tried again until the file changes.
    var failedIdentity: FileIdentity?
    var nextGeneration = 1
    var scaling: GroupScaling
    var handover: SupervisorHandover

    init(settings: GroupSettings, spawner: WorkerSpawner, handover: SupervisorHandover, logger: Logger) {
        self.settings = settings
        self.policy = RecyclePolicy(settings: settings)
        self.spawner = spawner
        self.spawner.limitResources(
            cpuSeconds: UInt64(settings.cpuTimeLimit), hardGrace: UInt64(Self.cpuHardLimitGrace),
            addressSpaceBytes: UInt64(settings.virtualMemoryLimit))
        self.handover = handover
        self.logger = logger
        self.slots = (0..<settings.maximumProcesses).map { index in
            var slot = WorkerSlot()
            slot.restartAt = index < settings.processes ? 0 : nil
            return slot
        }
        self.requestTimeouts = RequestTimeoutWatch(timeout: settings.requestTimeout)
        if self.policy.maximumRequests > 0 { self.nextCheckInterval = Self.requestCountInterval }
        let programPath = settings.programPath ?? spawner.executablePath
        self.image = ProgramImage.running(path: programPath)
        self.watch = ProgramWatch(
            programPath: settings.reload ? programPath : nil, restartFile: settings.restartFile,
            now: monotonicSeconds())
        self.scaling = GroupScaling(
            processes: settings.processes, maximumProcesses: settings.maximumProcesses,
            idleLimit: settings.inactivityTimeout > 0 ? settings.inactivityTimeout : GroupScaling.defaultIdleLimit)
    }

    /// Runs until told to stop, then exits the process.
    func run() -> Never {
        do {
            try SignalPipe.install([SIGTERM, SIGINT, SIGHUP, SIGCHLD])
            try Self.makeListenerNonBlocking()
        } catch {
            self.logger.critical("SG1001: supervisor cannot start: \(error)")
            exit(1)
        }
        // Inherited by the workers: at cpu-time-limit the kernel's SIGXCPU must not kill one
        // mid-request; the supervisor recycles it instead, and the hard limit kills it.
        signal(SIGXCPU, SIG_IGN)
        self.setUpScoreboard()
        self.logger.info(
            "SG1002: supervisor started",
            metadata: [
                "processes": "\(self.settings.processes)", "threads": "\(self.settings.threads)",
                "maximum-processes": "\(self.settings.maximumProcesses)",
                "socket": "\(self.settings.socketPath)", "program": "\(self.image.path)",
            ])
        while true {
            self.startDueWorkers()
            if self.waitForEvents(timeout: self.nextTimeout()) { self.connectionWaits() }
            for signalNumber in SignalPipe.drain() where signalNumber != SIGCHLD {
                if signalNumber == SIGHUP {
                    self.requestRoll(.signal)
                    continue
                }
                self.logger.info("SG1003: received \(signalName(signalNumber)): stopping workers")
                self.stop(
                    within: self.settings.shutdownTimeout,
                    limit: "shutdown-timeout \(formatSeconds(self.settings.shutdownTimeout))")
            }
            self.reapExitedWorkers()
            if getppid() != self.parentPID {
                self.logger.error("SG1004: Apache's parent process (pid \(self.parentPID)) is gone: stopping workers")
                self.stop(
                    within: self.settings.shutdownTimeout,
                    limit: "shutdown-timeout \(formatSeconds(self.settings.shutdownTimeout))")
            }
            if self.handover.isRetireRequested { self.retire() }
            self.lookForNewBuilds()
            self.enforceLimits()
            self.advanceRoll()
            self.scale()
            self.announceReadyToPredecessor()
        }
    }

    /// The board Apache's parent made for the group (`SWIFT_GATEWAY_SCOREBOARD_FD`), else one of
    /// its own; shared with every worker at fd 4.
    private func setUpScoreboard() {
        let entries = GroupScoreboard.entryCount(maximumProcesses: self.settings.maximumProcesses)
        // Workers find the board at fd 4 under their own variable.
        let apacheDescriptor = self.spawner.environment.removeValue(forKey: GroupScoreboard.apacheDescriptorVariable)
        if let apacheDescriptor {
            do {
                guard let descriptor = CInt(apacheDescriptor) else {
                    throw BoardAdoptionError("not a descriptor number")
                }
                let board = try GroupScoreboard.adoptApacheBoard(
                    descriptor: descriptor, workers: entries, requestSlots: self.settings.threads)
                self.scoreboard = board
                self.spawner.shareScoreboard(descriptor)
                self.adoptOrphans(of: board)
                board.takeOver(supervisorPID: getpid(), startedUnixMicroseconds: realtimeMicroseconds())
                return
            } catch {
                self.logger.warning(
                    "SG1031: cannot take the scoreboard Apache made for the group (fd \(apacheDescriptor)): \(error); making one of its own, which Apache's status page does not see"
                )
            }
        }
        do {
            let (board, descriptor) = try GroupScoreboard.create(
                workers: entries, requestSlots: self.settings.threads, processes: self.settings.processes,
                maximumProcesses: self.settings.maximumProcesses)
            self.scoreboard = board
            self.spawner.shareScoreboard(descriptor)
            board.takeOver(supervisorPID: getpid(), startedUnixMicroseconds: realtimeMicroseconds())
        } catch {
            self.logger.warning(
                "SG1012: cannot create the group's scoreboard: \(error); while its slots are full a worker turns away every request on a kept connection, and maximum-requests, inactivity-timeout, request-timeout, startup-timeout and scaling are not enforced"
            )
        }
    }

    /// A board taken over from a previous supervisor of the group (Apache restarts one that
    /// died): the entries of its workers that are gone are cleared; those still draining (they
    /// got SIGTERM when it died) keep theirs until they exit.
    private func adoptOrphans(of board: GroupScoreboard) {
        for (entry, pid) in board.occupiedEntries() {
            if kill(pid, 0) == 0 || errno == EPERM {
                self.orphans[pid] = entry
                board.setState(.draining, ofWorker: entry)
            } else {
                board.retire(worker: entry)
            }
        }
        if !self.orphans.isEmpty {
            let pids = self.orphans.keys.sorted().map { String($0) }.joined(separator: ", ")
            self.logger.notice(
                "SG1032: \(self.orphans.count) workers of the group's previous supervisor still drain (pids \(pids)): their scoreboard entries are kept until they exit"
            )
        }
    }

    /// Clears the entries of orphaned workers (`orphans`) that have exited.
    func forgetOrphansThatExited() {
        for (pid, entry) in self.orphans where kill(pid, 0) != 0 && errno == ESRCH {
            self.orphans[pid] = nil
            self.scoreboard?.retire(worker: entry)
        }
    }

    /// Workers share fd 3; non-blocking lets each `poll` + `accept` and lose races gracefully.
    private static func makeListenerNonBlocking() throws(SystemCallError) {
        let flags = fcntl(3, F_GETFL)
        guard flags >= 0, fcntl(3, F_SETFL, flags | O_NONBLOCK) == 0 else {
            throw SystemCallError("fcntl(3, O_NONBLOCK) on the group socket")
        }
    }

    func startDueWorkers() {
        let now = monotonicSeconds()
        for index in self.slots.indices {
            guard self.slots[index].pid == nil, let due = self.slots[index].restartAt, due <= now else { continue }
            do {
                guard
                    let (pid, entry) = try self.spawnWorker(
                        slot: index, image: self.image, lastExit: self.slots[index].lastExit)
                else {
                    // Every entry is taken by workers still draining: one is free soon.
                    self.slots[index].restartAt = now + Self.entryWaitInterval
                    continue
                }
                self.slots[index].pid = pid
                self.slots[index].entry = entry
                self.slots[index].startedAt = now
                self.slots[index].restartAt = nil
                self.slots[index].isReady = false
                self.slots[index].stuck = nil
                self.slots[index].sample = ProcessSample()
                self.slots[index].generation = self.image.generation
                self.slots[index].limits = self.policy.limits(slot: index, firstOfSlot: self.slots[index].firstOfSlot)
                self.slots[index].firstOfSlot = false
                self.logger.info("SG1005: started worker \(index) (pid \(pid))")
            } catch {
                let delay = self.slots[index].backoff.delay(afterLifetime: 0)
                self.slots[index].restartAt = now + delay
                self.logger.error(
                    "SG1006: cannot start worker \(index) (\(self.image.path)): \(error); retrying in \(delay)s")
            }
        }
    }

    /// Spawns a worker of `image` for `slot` on a free scoreboard entry, with its resource limits;
    /// nil while every entry is taken (by workers draining).
    func spawnWorker(
        slot index: Int, image: ProgramImage, lastExit: String
    ) throws(SystemCallError) -> (
        pid: pid_t, entry: Int
    )? {
        guard let entry = self.freeEntry(for: index) else { return nil }
        self.scoreboard?.reset(worker: entry)
        // Before the spawn: the worker may be accepting before the spawn returns here, and its
        // board entry must never show it accepting before it started.
        let startedAt = monotonicNanoseconds()
        let startedUnixMicroseconds = realtimeMicroseconds()
        let worker = try self.spawner.spawn(index: index, entry: entry, executablePath: image.spawnPath)
        let pid = worker.pid
        for (limit, error) in worker.unappliedLimits {
            self.logger.error("SG1019: cannot apply \(limit) to worker \(index) (pid \(pid)): \(error)")
        }
        self.scoreboard?.publishWorker(
            entry, pid: pid, slot: index, startedAt: startedAt, startedUnixMicroseconds: startedUnixMicroseconds,
            lastExit: lastExit)
        return (pid, entry)
    }

    /// A scoreboard entry no running worker uses, nil when every one is taken; the slot's index
    /// when the group has no scoreboard.
    private func freeEntry(for slot: Int) -> Int? {
        guard let board = self.scoreboard else { return slot }
        var used = Set(self.slots.compactMap(\.entry))
        used.formUnion(self.draining.compactMap(\.entry))
        used.formUnion(self.strays.values)
        used.formUnion(self.orphans.values)
        if let entry = self.roll?.successor?.entry { used.insert(entry) }
        return (0..<board.workerCount).first(where: { !used.contains($0) })
    }

    /// Until the next delayed restart, limit check, look at the program file or kill of a
    /// draining worker; at most half a second (to notice a lost parent).
    private func nextTimeout() -> Double {
        let now = monotonicSeconds()
        var deadline = now + (self.nextCheckInterval ?? Self.checkInterval)
        if let nextRestart = self.slots.compactMap({ $0.pid == nil ? $0.restartAt : nil }).min() {
            deadline = min(deadline, nextRestart)
        }
        for worker in self.draining where !worker.killed {
            deadline = min(deadline, worker.killAt)
        }
        if self.watch.isActive { deadline = min(deadline, self.watch.nextLookAt) }
        return max(0, deadline - now)
    }

    /// Waits for a signal, a retire request or the timeout; true when a connection waits on the
    /// socket of a transient group that has no worker.
    private func waitForEvents(timeout: Double) -> Bool {
        var descriptors = [pollfd(fd: SignalPipe.descriptor, events: Int16(POLLIN), revents: 0)]
        if let retire = self.handover.retireDescriptor {
            descriptors.append(pollfd(fd: retire, events: Int16(POLLIN), revents: 0))
        }
        let watchesListener = self.scaling.startsOnDemand(self.slots.map(\.isActive))
        if watchesListener { descriptors.append(pollfd(fd: 3, events: Int16(POLLIN), revents: 0)) }
        _ = poll(&descriptors, nfds_t(descriptors.count), CInt((timeout * 1000).rounded(.up)))
        guard watchesListener, let listener = descriptors.last else { return false }
        return listener.revents & Int16(POLLIN) != 0
    }

    func reapExitedWorkers() {
        while let (pid, reason) = reapOne(blocking: false) {
            self.requestTimeouts.forget(pid: pid)
            self.condemned.removeAll { $0.pid == pid }
            if let entry = self.strays.removeValue(forKey: pid) {
                self.scoreboard?.retire(worker: entry)
                continue
            }
            if let index = self.draining.firstIndex(where: { $0.pid == pid }) {
                self.drainingWorkerExited(self.draining.remove(at: index), reason: reason)
                continue
            }
            if self.roll?.successor?.pid == pid {
                self.successorExited(reason: reason)
                continue
            }
            guard let index = self.slots.firstIndex(where: { $0.pid == pid }) else { continue }
            self.slotWorkerExited(index, pid: pid, reason: reason)
        }
    }

    private func slotWorkerExited(_ index: Int, pid: pid_t, reason: ExitReason) {
        let now = monotonicSeconds()
        let lifetime = now - self.slots[index].startedAt
        // Its siblings must not turn requests away towards a worker that is gone.
        if let entry = self.slots[index].entry { self.scoreboard?.retire(worker: entry) }
        self.slots[index].pid = nil
        self.slots[index].entry = nil
        if let killed = self.slots[index].killedBecause {
            self.scoreboard?.count(killed.counter)
            // Said when it was killed (SG1016, SG1018, SG1020).
            self.slots[index].killedBecause = nil
            self.slots[index].lastExit = killed.note
            let delay = killed.failedStart ? self.slots[index].backoff.delay(afterLifetime: 0) : 0
            self.slots[index].restartAt = now + delay
            if killed.failedStart {
                self.logger.error(
                    "SG1007: worker \(index) (pid \(pid)) \(reason) after \(formatSeconds(lifetime)); restarting in \(formatSeconds(delay))"
                )
            }
            return
        }
        let delay = self.slots[index].backoff.delay(afterLifetime: lifetime)
        self.slots[index].restartAt = now + delay
        self.slots[index].lastExit = "\(reason) after \(formatSeconds(lifetime))"
        self.scoreboard?.count(RestartCounter(reason))
        let level: Logger.Level = reason == .exited(code: 0) ? .notice : .error
        self.logger.log(
            level: level,
            "SG1007: worker \(index) (pid \(pid)) \(reason) after \(formatSeconds(lifetime)); restarting in \(formatSeconds(delay))"
        )
    }

    /// A draining worker is gone: its entry is free (and after a recycle the next may begin).
    /// Only an exit other than the drain's own (status 0) or the supervisor's SIGKILL is worth a line.
    private func drainingWorkerExited(_ worker: DrainingWorker, reason: ExitReason) {
        if let entry = worker.entry { self.scoreboard?.retire(worker: entry) }
        let expected =
            reason == .exited(code: 0) || (worker.killed && reason == .signalled(signal: SIGKILL, coreDumped: false))
        if !expected {
            self.logger.error("SG1015: draining worker \(worker.slot) (pid \(worker.pid)) \(reason) while draining")
        }
    }

    /// Takes the worker of `slot` out of it and lets it drain: SIGTERM, SIGKILL a second after
    /// graceful-timeout. The slot is left without a worker.
    func drain(slot index: Int, cause: DrainingWorker.Cause, now: Double) {
        guard let pid = self.slots[index].pid else { return }
        kill(pid, SIGTERM)
        let killAt = now + self.settings.gracefulTimeout + Self.killGrace
        self.draining.append(
            DrainingWorker(pid: pid, slot: index, entry: self.slots[index].entry, cause: cause, killAt: killAt))
        if let entry = self.slots[index].entry { self.scoreboard?.setState(.draining, ofWorker: entry) }
        self.slots[index].pid = nil
        self.slots[index].entry = nil
    }

    /// Makes the loop look again within `seconds`.
    func wakeWithin(_ seconds: Double) {
        self.nextCheckInterval = max(0, min(self.nextCheckInterval ?? Self.checkInterval, seconds))
    }

    // MARK: Handover

    /// Once every one of its `processes` workers accepts, a supervisor that took the group over
    /// from another (Apache restarted with a changed configuration) tells that one to retire.
    private func announceReadyToPredecessor() {
        guard self.handover.hasPredecessor,
            self.slots.prefix(self.settings.processes).allSatisfy({ $0.pid != nil && $0.isReady })
        else { return }
        self.handover.announceReady()
        self.logger.info("SG1028: the group's workers accept: its previous supervisor retires")
    }

    /// Apache started a new supervisor for the group and it accepts: drain and exit.
    private func retire() -> Never {
        self.logger.notice(
            "SG1029: the group's new supervisor accepts (Apache restarted with a changed configuration): draining the workers within graceful-timeout \(formatSeconds(self.settings.gracefulTimeout)), then exiting"
        )
        self.stop(
            within: self.settings.gracefulTimeout + Self.killGrace,
            limit:
                "graceful-timeout \(formatSeconds(self.settings.gracefulTimeout)) and \(formatSeconds(Self.killGrace))")
    }

    // MARK: Shutdown

    /// SIGTERM to every worker, SIGKILL to those still there after `seconds`, then exit.
    func stop(within seconds: Double, limit: String) -> Never {
        var running = self.slots.compactMap(\.pid) + self.draining.map(\.pid)
        if let successor = self.roll?.successor?.pid { running.append(successor) }
        for pid in running { kill(pid, SIGTERM) }
        var remaining = Set(running)
        let deadline = monotonicSeconds() + seconds
        while !remaining.isEmpty, monotonicSeconds() < deadline {
            while let (pid, reason) = reapOne(blocking: false) {
                remaining.remove(pid)
                self.logger.info("SG1008: worker pid \(pid) \(reason) during shutdown")
            }
            if !remaining.isEmpty { usleep(20_000) }
        }
        for pid in remaining {
            self.logger.warning(
                "SG1009: worker pid \(pid) still running after \(limit): SIGKILL"
            )
            kill(pid, SIGKILL)
            var status: CInt = 0
            _ = waitpid(pid, &status, 0)
        }
        self.logger.info("SG1010: supervisor stopped")
        exit(0)
    }
}

/// Reaps one exited child, if any.
func reapOne(blocking: Bool) -> (pid_t, ExitReason)? {
    var status: CInt = 0
    let pid = waitpid(-1, &status, blocking ? 0 : WNOHANG)
    guard pid > 0 else { return nil }
    return (pid, ExitReason(waitStatus: status))
}
