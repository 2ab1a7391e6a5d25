import CSwiftGatewayLinux
import Logging

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Keeps a group's workers running: starts `processes` of them, replaces each one that exits
/// (with backoff when they keep dying young), enforces the group's limits on them from outside,
/// logs every exit and recycle, publishes what it knows of each on the scoreboard, and drains
/// them on SIGTERM.
///
/// It runs on one thread as a `poll` loop over the signal pipe (signals and child exits): a
/// supervisor must stay responsive whatever its workers do, so it does no other work, holds no
/// locks and never waits for a worker.
///
/// Recycling: the worker is sent SIGTERM (it stops accepting, closes its idle connections with a
/// notice Apache answers by sending their next request elsewhere, and finishes its requests in
/// flight) and its replacement is started at once in the same slot, on another scoreboard entry.
/// The old one drains while the new one serves; still there a second after `graceful-timeout`,
/// it is killed. One recycle at a time: the next begins when the recycled worker has exited and
/// every slot's worker accepts. Killing is for what cannot wait: a worker above 1.5 ×
/// `memory-limit`, or one not accepting `startup-timeout` after it was spawned.
final class Supervisor {
    private struct WorkerSlot {
        var pid: pid_t?
        /// Its entry on the scoreboard, while it has a worker.
        var entry: Int?
        var startedAt: Double = 0
        var restartAt: Double? = 0
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
        var killedBecause: (note: String, failedStart: Bool)?
    }

    /// A worker being recycled: draining, its replacement already started.
    private struct RecycledWorker {
        let pid: pid_t
        let slot: Int
        let entry: Int?
        var killAt: Double
        var killed = false
    }

    /// A worker above 1.5 × memory-limit: told to stop accepting, killed once at most one
    /// request (the one that grew, most likely) remains, or at `killAt`.
    private struct CondemnedWorker {
        let pid: pid_t
        let entry: Int?
        let killAt: Double
    }

    /// How often the limits are checked at least; while workers serve requests under
    /// `maximum-requests` or `memory-limit`, `busyCheckInterval`; while a due recycle waits for a
    /// replacement to accept, or a condemned worker for its last requests, `readinessCheckInterval`
    /// (a worker's exit wakes the loop by itself).
    private static let checkInterval = 0.5
    private static let busyCheckInterval = 0.01
    /// Under `maximum-requests`, while no request was served since the last look: load that
    /// begins is noticed soon, without waking often on an idle group.
    private static let requestCountInterval = 0.05
    private static let startingCheckInterval = 0.05
    private static let readinessCheckInterval = 0.001
    /// A recycled worker gives up on its requests at `graceful-timeout` by itself; one still
    /// there this much later is killed.
    private static let killGrace = 1.0
    /// A worker condemned for its memory has this long to finish its other requests.
    private static let condemnedGrace = 1.0
    /// A request running this long in a condemned worker is taken for the one that grew.
    private static let culpritAge: Int64 = 100_000_000
    /// How often the figures on the scoreboard are sampled when no limit needs them sooner.
    private static let sampleInterval = 0.5
    /// The hard CPU limit comes this many seconds after `cpu-time-limit` (the soft one).
    static let cpuHardLimitGrace = 5

    private let settings: GroupSettings
    private let policy: RecyclePolicy
    private var spawner: WorkerSpawner
    private var scoreboard: GroupScoreboard?
    private let logger: Logger
    private let parentPID = getppid()
    private var slots: [WorkerSlot]
    private var recycled: RecycledWorker?
    private var condemned: [CondemnedWorker] = []
    private var requestTimeouts: RequestTimeoutWatch
    /// When the next look at the limits should come, if sooner than `checkInterval`.
    private var nextCheckInterval: Double?
    /// Requests served by the group at the last look, to see whether any were served since.
    private var servedAtLastCheck = 0
    private var lastSampleAt = 0.0

    init(settings: GroupSettings, spawner: WorkerSpawner, logger: Logger) {
        self.settings = settings
        self.policy = RecyclePolicy(settings: settings)
        self.spawner = spawner
        self.logger = logger
        self.slots = Array(repeating: WorkerSlot(), count: settings.processes)
        self.requestTimeouts = RequestTimeoutWatch(timeout: settings.requestTimeout)
        if self.policy.maximumRequests > 0 { self.nextCheckInterval = Self.requestCountInterval }
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
        do {
            let entries = GroupScoreboard.entryCount(processes: self.settings.processes)
            let (board, descriptor) = try GroupScoreboard.create(
                workers: entries, requestSlots: self.settings.threads)
            self.scoreboard = board
            self.spawner.shareScoreboard(descriptor)
        } catch {
            self.logger.warning(
                "SG1012: cannot create the group's scoreboard: \(error); while its slots are full a worker turns away every request on a kept connection, and maximum-requests, inactivity-timeout, request-timeout and startup-timeout are not enforced"
            )
        }
        self.logger.info(
            "SG1002: supervisor started",
            metadata: [
                "processes": "\(self.settings.processes)", "threads": "\(self.settings.threads)",
                "socket": "\(self.settings.socketPath)",
            ])
        while true {
            self.startDueWorkers()
            self.waitForEvents(timeout: self.nextTimeout())
            for signalNumber in SignalPipe.drain() where signalNumber != SIGCHLD {
                self.logger.info("SG1003: received \(signalName(signalNumber)): stopping workers")
                self.shutdown()
            }
            self.reapExitedWorkers()
            if getppid() != self.parentPID {
                self.logger.error("SG1004: Apache's parent process (pid \(self.parentPID)) is gone: stopping workers")
                self.shutdown()
            }
            self.enforceLimits()
        }
    }

    /// Workers share fd 3; non-blocking lets each `poll` + `accept` and lose races gracefully.
    private static func makeListenerNonBlocking() throws(SystemCallError) {
        let flags = fcntl(3, F_GETFL)
        guard flags >= 0, fcntl(3, F_SETFL, flags | O_NONBLOCK) == 0 else {
            throw SystemCallError("fcntl(3, O_NONBLOCK) on the group socket")
        }
    }

    private func startDueWorkers() {
        let now = monotonicSeconds()
        for index in self.slots.indices {
            guard self.slots[index].pid == nil, let due = self.slots[index].restartAt, due <= now else { continue }
            let entry = self.freeEntry(for: index)
            self.scoreboard?.reset(worker: entry)
            do {
                let pid = try self.spawner.spawn(index: index, entry: entry)
                self.applyResourceLimits(toWorker: index, pid: pid)
                self.slots[index].pid = pid
                self.slots[index].entry = entry
                self.slots[index].startedAt = now
                self.slots[index].restartAt = nil
                self.slots[index].isReady = false
                self.slots[index].stuck = nil
                self.slots[index].sample = ProcessSample()
                self.slots[index].limits = self.policy.limits(slot: index, firstOfSlot: self.slots[index].firstOfSlot)
                self.slots[index].firstOfSlot = false
                self.scoreboard?.publishWorker(
                    entry, pid: pid, slot: index, startedAt: monotonicNanoseconds(),
                    startedUnixMicroseconds: realtimeMicroseconds(), lastExit: self.slots[index].lastExit)
                self.logger.info("SG1005: started worker \(index) (pid \(pid))")
            } catch {
                let delay = self.slots[index].backoff.delay(afterLifetime: 0)
                self.slots[index].restartAt = now + delay
                self.logger.error("SG1006: cannot start worker \(index): \(error); retrying in \(delay)s")
            }
        }
    }

    /// `cpu-time-limit` and `virtual-memory-limit`, set on the worker as soon as it exists,
    /// before its program has run more than its first instructions.
    private func applyResourceLimits(toWorker index: Int, pid: pid_t) {
        if self.settings.cpuTimeLimit > 0 {
            let soft = UInt64(self.settings.cpuTimeLimit)
            if sg_limit_cpu_seconds(pid, soft, soft + UInt64(Self.cpuHardLimitGrace)) != 0 {
                self.logger.error(
                    "SG1019: cannot apply cpu-time-limit to worker \(index) (pid \(pid)): \(SystemCallError("prlimit"))"
                )
            }
        }
        if self.settings.virtualMemoryLimit > 0,
            sg_limit_address_space(pid, UInt64(self.settings.virtualMemoryLimit)) != 0
        {
            self.logger.error(
                "SG1019: cannot apply virtual-memory-limit to worker \(index) (pid \(pid)): \(SystemCallError("prlimit"))"
            )
        }
    }

    /// A scoreboard entry no running worker uses (there is one more than slots, for a recycled
    /// worker draining); the slot's index when the group has no scoreboard.
    private func freeEntry(for slot: Int) -> Int {
        guard let board = self.scoreboard else { return slot }
        var used = Set(self.slots.compactMap(\.entry))
        if let entry = self.recycled?.entry { used.insert(entry) }
        return (0..<board.workerCount).first(where: { !used.contains($0) }) ?? slot
    }

    /// Until the next delayed restart, limit check or kill of a recycled worker; at most half a
    /// second (to notice a lost parent).
    private func nextTimeout() -> Double {
        let now = monotonicSeconds()
        var deadline = now + (self.nextCheckInterval ?? Self.checkInterval)
        if let nextRestart = self.slots.compactMap({ $0.pid == nil ? $0.restartAt : nil }).min() {
            deadline = min(deadline, nextRestart)
        }
        if let recycled = self.recycled, !recycled.killed {
            deadline = min(deadline, recycled.killAt)
        }
        return max(0, deadline - now)
    }

    private func waitForEvents(timeout: Double) {
        var descriptor = pollfd(fd: SignalPipe.descriptor, events: Int16(POLLIN), revents: 0)
        _ = poll(&descriptor, 1, CInt((timeout * 1000).rounded(.up)))
    }

    private func reapExitedWorkers() {
        while let (pid, reason) = reapOne(blocking: false) {
            self.requestTimeouts.forget(pid: pid)
            self.condemned.removeAll { $0.pid == pid }
            if let recycled = self.recycled, recycled.pid == pid {
                self.recycledWorkerExited(recycled, reason: reason)
                continue
            }
            guard let index = self.slots.firstIndex(where: { $0.pid == pid }) else { continue }
            let now = monotonicSeconds()
            let lifetime = now - self.slots[index].startedAt
            // Its siblings must not turn requests away towards a worker that is gone.
            if let entry = self.slots[index].entry { self.scoreboard?.reset(worker: entry) }
            self.slots[index].pid = nil
            self.slots[index].entry = nil
            if let killed = self.slots[index].killedBecause {
                // Said when it was killed (SG1016, SG1018).
                self.slots[index].killedBecause = nil
                self.slots[index].lastExit = killed.note
                let delay = killed.failedStart ? self.slots[index].backoff.delay(afterLifetime: 0) : 0
                self.slots[index].restartAt = now + delay
                if killed.failedStart {
                    self.logger.error(
                        "SG1007: worker \(index) (pid \(pid)) \(reason) after \(formatSeconds(lifetime)); restarting in \(formatSeconds(delay))"
                    )
                }
                continue
            }
            let delay = self.slots[index].backoff.delay(afterLifetime: lifetime)
            self.slots[index].restartAt = now + delay
            self.slots[index].lastExit = "\(reason) after \(formatSeconds(lifetime))"
            let level: Logger.Level = reason == .exited(code: 0) ? .notice : .error
            self.logger.log(
                level: level,
                "SG1007: worker \(index) (pid \(pid)) \(reason) after \(formatSeconds(lifetime)); restarting in \(formatSeconds(delay))"
            )
        }
    }

    /// A recycled worker is gone: its entry is free, the next recycle may begin. Only an exit
    /// other than the drain's own (status 0) or the supervisor's SIGKILL is worth a line.
    private func recycledWorkerExited(_ worker: RecycledWorker, reason: ExitReason) {
        self.recycled = nil
        if let entry = worker.entry { self.scoreboard?.reset(worker: entry) }
        let expected =
            reason == .exited(code: 0) || (worker.killed && reason == .signalled(signal: SIGKILL, coreDumped: false))
        if !expected {
            self.logger.error("SG1015: recycled worker \(worker.slot) (pid \(worker.pid)) \(reason) while draining")
        }
    }

    // MARK: Limits

    /// Kills what must be killed, gives up on requests past request-timeout, and recycles the
    /// worker that reached a limit first, when no recycle is under way and every slot's worker
    /// accepts.
    private func enforceLimits() {
        self.nextCheckInterval = nil
        let now = monotonicSeconds()
        let nowNanoseconds = monotonicNanoseconds()
        self.killRecycledWorkerPastItsTime(now: now)
        let sampling = now - self.lastSampleAt >= Self.sampleInterval || self.policy.memoryLimit > 0
        if sampling { self.lastSampleAt = now }

        var activities: [WorkerActivity?] = []
        var schedule: [RecycleSchedule.Slot] = []
        var wakeAt = now + Self.checkInterval
        for index in self.slots.indices {
            let activity = self.slots[index].entry.flatMap { self.scoreboard?.activity(ofWorker: $0) }
            activities.append(activity)
            var due: RecycleReason?
            if let pid = self.slots[index].pid, self.slots[index].killedBecause == nil {
                if sampling { self.sample(slot: index, pid: pid) }
                self.noteReadiness(slot: index, pid: pid, activity: activity, now: now, wakeAt: &wakeAt)
                switch self.reviewRequests(
                    ofWorker: pid, slot: index, entry: self.slots[index].entry, nowNanoseconds: nowNanoseconds,
                    wakeAt: &wakeAt)
                {
                case nil:
                    break
                case .recycle(let reason):
                    self.slots[index].stuck = reason
                case .kill(let ranFor):
                    self.slots[index].killedBecause = (
                        "killed: its event loop was blocked by a request past request-timeout", false
                    )
                    self.killBlockedWorker(pid: pid, name: "worker \(index)", ranFor: ranFor)
                }
                due = self.slots[index].stuck
                if self.slots[index].killedBecause == nil, due == nil, self.policy.isActive {
                    due = self.policy.reason(
                        limits: self.slots[index].limits, age: now - self.slots[index].startedAt, activity: activity,
                        sample: self.slots[index].sample, now: nowNanoseconds)
                }
            }
            schedule.append(
                RecycleSchedule.Slot(
                    hasWorker: self.slots[index].pid != nil && self.slots[index].killedBecause == nil,
                    // Without a scoreboard there is no telling: taken as accepting.
                    isAccepting: activity?.isAccepting ?? true,
                    startedAt: self.slots[index].startedAt,
                    due: due
                ))
        }
        self.reviewRecycledWorker(sampling: sampling, nowNanoseconds: nowNanoseconds, wakeAt: &wakeAt)
        self.killCondemnedWorkers(now: now, wakeAt: &wakeAt)

        let served = activities.reduce(0) { $0 + ($1?.requestsServed ?? 0) }
        var interval = wakeAt - now
        // Under these limits load that begins must be noticed within a few requests; memory can
        // grow by hundreds of MiB in a tenth of a second.
        if self.policy.memoryLimit > 0 {
            interval = min(interval, Self.busyCheckInterval)
        } else if self.policy.maximumRequests > 0 {
            let served = served != self.servedAtLastCheck
            interval = min(interval, served ? Self.busyCheckInterval : Self.requestCountInterval)
        }
        self.servedAtLastCheck = served
        switch RecycleSchedule.decide(slots: schedule, recycleUnderWay: self.recycled != nil) {
        case .nothing:
            break
        case .waitForReplacement:
            interval = min(interval, Self.readinessCheckInterval)
        case .recycle(let slot, let reason):
            self.recycle(slot: slot, reason: reason, activity: activities[slot], now: now)
        }
        self.nextCheckInterval = max(0, interval)
    }

    private func killRecycledWorkerPastItsTime(now: Double) {
        guard var worker = self.recycled, !worker.killed, now >= worker.killAt else { return }
        self.logger.warning(
            "SG1014: recycled worker \(worker.slot) (pid \(worker.pid)) still running \(formatSeconds(Self.killGrace)) after graceful-timeout \(formatSeconds(self.settings.gracefulTimeout)): SIGKILL"
        )
        kill(worker.pid, SIGKILL)
        worker.killed = true
        self.recycled = worker
    }

    /// Samples a slot's worker, publishes the figures, and condemns it above 1.5 × memory-limit.
    private func sample(slot index: Int, pid: pid_t) {
        let (sample, condemned) = self.sample(pid: pid, entry: self.slots[index].entry, name: "worker \(index)")
        self.slots[index].sample = sample
        if let resident = sample.residentBytes, condemned {
            self.slots[index].killedBecause = (
                "killed: RSS \(ResidentMemory.describe(resident)) above 1.5 × memory-limit", false
            )
        }
    }

    /// Samples worker `pid` from /proc, publishes the figures on its scoreboard entry, and
    /// condemns it above 1.5 × memory-limit; the sample, and whether it was condemned.
    private func sample(pid: pid_t, entry: Int?, name: String) -> (sample: ProcessSample, condemned: Bool) {
        let sample = ProcessSample.read(pid: pid)
        if let entry {
            self.scoreboard?.recordSample(
                residentBytes: sample.residentBytes ?? 0, cpuMicroseconds: sample.cpuMicroseconds ?? 0,
                ofWorker: entry)
        }
        guard let threshold = self.policy.memoryKillThreshold, let resident = sample.residentBytes, resident > threshold
        else { return (sample, false) }
        self.condemn(pid: pid, entry: entry, name: name, resident: resident)
        return (sample, true)
    }

    /// Publishes that a slot's worker accepts, or kills it when it does not within startup-timeout.
    private func noteReadiness(
        slot index: Int, pid: pid_t, activity: WorkerActivity?, now: Double, wakeAt: inout Double
    ) {
        guard !self.slots[index].isReady, let activity else { return }
        if activity.isAccepting {
            self.slots[index].isReady = true
            if let entry = self.slots[index].entry { self.scoreboard?.setState(.ready, ofWorker: entry) }
            return
        }
        let limit = self.settings.startupTimeout
        let age = now - self.slots[index].startedAt
        guard limit > 0, age >= limit else {
            wakeAt = min(wakeAt, now + Self.startingCheckInterval)
            return
        }
        self.logger.error(
            "SG1018: worker \(index) (pid \(pid)) is not accepting \(formatSeconds(age)) after it was spawned (startup-timeout \(formatSeconds(limit))): SIGKILL"
        )
        self.slots[index].killedBecause = ("killed: not accepting within startup-timeout \(formatSeconds(limit))", true)
        kill(pid, SIGKILL)
    }

    /// What a stuck request makes of its worker.
    private enum StuckWorker {
        /// The worker cancelled the request but it runs on: recycle the worker.
        case recycle(RecycleReason)
        /// The worker did not act on the cancel of a request running `ranFor` seconds: its event
        /// loop is blocked, nothing in it can finish, and a drain would only let Apache put more
        /// requests on its kept connections. Kill it.
        case kill(ranFor: Double)
    }

    /// Gives up on a worker's requests past request-timeout (the worker answers them 504) and
    /// says whether one of them is stuck.
    private func reviewRequests(
        ofWorker pid: pid_t, slot index: Int, entry: Int?, nowNanoseconds: Int64, wakeAt: inout Double
    ) -> StuckWorker? {
        guard self.requestTimeouts.isActive, let entry, let board = self.scoreboard else { return nil }
        let running = board.runningRequests(ofWorker: entry)
        guard !running.isEmpty else { return nil }
        var stuck: StuckWorker?
        var signalled = false
        for action in self.requestTimeouts.review(pid: pid, running: running, now: nowNanoseconds) {
            switch action {
            case .cancel(let slot, let started, let ranFor):
                board.requestCancel(slot: slot, started: started, ofWorker: entry)
                self.logger.warning(
                    "SG1017: worker \(index) (pid \(pid)): a request running \(formatSeconds(ranFor)) passed request-timeout \(formatSeconds(self.settings.requestTimeout)): cancelling it"
                )
                signalled = true
            case .stuck(let slot, let started, let ranFor):
                if board.cancelAcknowledged(slot: slot, started: started, ofWorker: entry) {
                    stuck = stuck ?? .recycle(.requestStuck(ranFor: ranFor, limit: self.settings.requestTimeout))
                } else {
                    stuck = .kill(ranFor: ranFor)
                }
            }
        }
        // The worker looks at its cancel cells when told.
        if signalled { kill(pid, SIGUSR2) }
        if let next = self.requestTimeouts.nextDeadline(pid: pid, running: running) {
            wakeAt = min(wakeAt, Double(next) / 1e9 + 0.001)
        }
        return stuck
    }

    /// SIGKILL to a worker whose event loop is blocked (SG1020).
    private func killBlockedWorker(pid: pid_t, name: String, ranFor: Double) {
        self.logger.error(
            "SG1020: \(name) (pid \(pid)) did not act on the cancel of a request running \(formatSeconds(ranFor)) (request-timeout \(formatSeconds(self.settings.requestTimeout))): its event loop is blocked; SIGKILL"
        )
        kill(pid, SIGKILL)
    }

    /// A recycled worker's requests time out too, and its memory is watched while it drains.
    private func reviewRecycledWorker(sampling: Bool, nowNanoseconds: Int64, wakeAt: inout Double) {
        guard let worker = self.recycled, !worker.killed else { return }
        if case .kill(let ranFor) = self.reviewRequests(
            ofWorker: worker.pid, slot: worker.slot, entry: worker.entry, nowNanoseconds: nowNanoseconds,
            wakeAt: &wakeAt)
        {
            self.killBlockedWorker(pid: worker.pid, name: "recycled worker \(worker.slot)", ranFor: ranFor)
            self.recycled?.killed = true
            return
        }
        guard sampling, !self.condemned.contains(where: { $0.pid == worker.pid }) else { return }
        _ = self.sample(pid: worker.pid, entry: worker.entry, name: "recycled worker \(worker.slot)")
    }

    /// Stops a worker above 1.5 × memory-limit from accepting, to kill it once its other
    /// requests are done (`killCondemnedWorkers`).
    private func condemn(pid: pid_t, entry: Int?, name: String, resident: Int) {
        guard !self.condemned.contains(where: { $0.pid == pid }) else { return }
        self.logger.error(
            "SG1016: \(name) (pid \(pid)) has RSS \(ResidentMemory.describe(resident)), above 1.5 × memory-limit \(ResidentMemory.describe(self.policy.memoryLimit)): killing it as soon as its other requests are done (within \(formatSeconds(Self.condemnedGrace)))"
        )
        kill(pid, SIGTERM)
        self.condemned.append(CondemnedWorker(pid: pid, entry: entry, killAt: monotonicSeconds() + Self.condemnedGrace))
    }

    private func killCondemnedWorkers(now: Double, wakeAt: inout Double) {
        var waiting: [CondemnedWorker] = []
        for worker in self.condemned {
            guard now >= worker.killAt || self.onlyTheCulpritRemains(in: worker) else {
                waiting.append(worker)
                wakeAt = min(wakeAt, now + Self.readinessCheckInterval)
                continue
            }
            kill(worker.pid, SIGKILL)
            if self.recycled?.pid == worker.pid { self.recycled?.killed = true }
        }
        self.condemned = waiting
    }

    /// Whether a condemned worker's other requests are done: none is left, or one that has run
    /// longer than a short request would (the one that grew, most likely).
    private func onlyTheCulpritRemains(in worker: CondemnedWorker) -> Bool {
        guard let entry = worker.entry, let board = self.scoreboard else { return true }
        let running = board.runningRequests(ofWorker: entry)
        guard running.count <= 1 else { return false }
        guard let request = running.first else { return true }
        return monotonicNanoseconds() - request.started >= Self.culpritAge
    }

    /// SIGTERM to the worker of `slot` (it drains), and its replacement started at once.
    private func recycle(slot index: Int, reason: RecycleReason, activity: WorkerActivity?, now: Double) {
        guard let pid = self.slots[index].pid else { return }
        let age = now - self.slots[index].startedAt
        let served = activity.map { "\($0.requestsServed) requests served" } ?? "requests served unknown"
        let resident = ResidentMemory.describe(ResidentMemory.bytes(ofProcess: pid))
        self.logger.notice(
            "SG1013: recycling worker \(index) (pid \(pid)): \(reason); age \(formatSeconds(age)), \(served), RSS \(resident); its replacement starts now"
        )
        kill(pid, SIGTERM)
        let killAt = now + self.settings.gracefulTimeout + Self.killGrace
        self.recycled = RecycledWorker(pid: pid, slot: index, entry: self.slots[index].entry, killAt: killAt)

        if let entry = self.slots[index].entry { self.scoreboard?.setState(.draining, ofWorker: entry) }
        self.slots[index].pid = nil
        self.slots[index].entry = nil
        self.slots[index].restartAt = now
        self.slots[index].lastExit = "recycled: \(reason.summary) after \(formatSeconds(age))"
        // A worker that lived to its recycle was healthy: a later crash starts a fresh backoff.
        self.slots[index].backoff = RestartBackoff()
        self.startDueWorkers()
    }

    // MARK: Shutdown

    /// SIGTERM to every worker, SIGKILL to those still there after `shutdown-timeout`, then exit.
    private func shutdown() -> Never {
        var running = self.slots.compactMap(\.pid)
        if let recycled = self.recycled { running.append(recycled.pid) }
        for pid in running { kill(pid, SIGTERM) }
        var remaining = Set(running)
        let deadline = monotonicSeconds() + self.settings.shutdownTimeout
        while !remaining.isEmpty, monotonicSeconds() < deadline {
            while let (pid, reason) = reapOne(blocking: false) {
                remaining.remove(pid)
                self.logger.info("SG1008: worker pid \(pid) \(reason) during shutdown")
            }
            if !remaining.isEmpty { usleep(20_000) }
        }
        for pid in remaining {
            self.logger.warning(
                "SG1009: worker pid \(pid) still running after shutdown-timeout \(self.settings.shutdownTimeout)s: SIGKILL"
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
private func reapOne(blocking: Bool) -> (pid_t, ExitReason)? {
    var status: CInt = 0
    let pid = waitpid(-1, &status, blocking ? 0 : WNOHANG)
    guard pid > 0 else { return nil }
    return (pid, ExitReason(waitStatus: status))
}
