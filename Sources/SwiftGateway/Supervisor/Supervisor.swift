import Logging

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Keeps a group's workers running: starts `processes` of them, replaces each one that exits
/// (with backoff when they keep dying young), recycles those that reach the group's limits, logs
/// every exit and recycle, and drains them on SIGTERM.
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
/// every slot's worker accepts.
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
    }

    /// A worker being recycled: draining, its replacement already started.
    private struct RecycledWorker {
        let pid: pid_t
        let slot: Int
        let entry: Int?
        let killAt: Double
        var killed = false
    }

    /// How often the limits are checked at least; while workers serve requests under
    /// `maximum-requests`, `busyCheckInterval`; while a due recycle waits for a replacement to
    /// accept, `readinessCheckInterval` (a recycled worker's exit wakes the loop by itself).
    private static let checkInterval = 0.5
    private static let busyCheckInterval = 0.01
    /// Under `maximum-requests`, while no request was served since the last look: load that
    /// begins is noticed soon, without waking often on an idle group.
    private static let requestCountInterval = 0.05
    private static let readinessCheckInterval = 0.001
    /// A recycled worker gives up on its requests at `graceful-timeout` by itself; one still
    /// there this much later is killed.
    private static let killGrace = 1.0

    private let settings: GroupSettings
    private let policy: RecyclePolicy
    private var spawner: WorkerSpawner
    private var scoreboard: GroupScoreboard?
    private let logger: Logger
    private let parentPID = getppid()
    private var slots: [WorkerSlot]
    private var recycled: RecycledWorker?
    /// When the next look at the limits should come, if sooner than `checkInterval`.
    private var nextCheckInterval: Double?
    /// Requests served by the group at the last look, to see whether any were served since.
    private var servedAtLastCheck = 0

    init(settings: GroupSettings, spawner: WorkerSpawner, logger: Logger) {
        self.settings = settings
        self.policy = RecyclePolicy(settings: settings)
        self.spawner = spawner
        self.logger = logger
        self.slots = Array(repeating: WorkerSlot(), count: settings.processes)
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
        do {
            let entries = GroupScoreboard.entryCount(processes: self.settings.processes)
            let (board, descriptor) = try GroupScoreboard.create(
                workers: entries, requestSlots: self.settings.threads)
            self.scoreboard = board
            self.spawner.shareScoreboard(descriptor)
        } catch {
            self.logger.warning(
                "SG1012: cannot create the group's scoreboard: \(error); while its slots are full a worker turns away every request on a kept connection, and maximum-requests and inactivity-timeout are not enforced"
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
                self.slots[index].pid = pid
                self.slots[index].entry = entry
                self.slots[index].startedAt = now
                self.slots[index].restartAt = nil
                self.slots[index].limits = self.policy.limits(slot: index, firstOfSlot: self.slots[index].firstOfSlot)
                self.slots[index].firstOfSlot = false
                self.logger.info("SG1005: started worker \(index) (pid \(pid))")
            } catch {
                let delay = self.slots[index].backoff.delay(afterLifetime: 0)
                self.slots[index].restartAt = now + delay
                self.logger.error("SG1006: cannot start worker \(index): \(error); retrying in \(delay)s")
            }
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
            if let recycled = self.recycled, recycled.pid == pid {
                self.recycledWorkerExited(recycled, reason: reason)
                continue
            }
            guard let index = self.slots.firstIndex(where: { $0.pid == pid }) else { continue }
            let now = monotonicSeconds()
            let lifetime = now - self.slots[index].startedAt
            let delay = self.slots[index].backoff.delay(afterLifetime: lifetime)
            // Its siblings must not turn requests away towards a worker that is gone.
            if let entry = self.slots[index].entry { self.scoreboard?.reset(worker: entry) }
            self.slots[index].pid = nil
            self.slots[index].entry = nil
            self.slots[index].restartAt = now + delay
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

    /// Kills a recycled worker past its time, and recycles the worker that reached a limit first,
    /// when no recycle is under way and every slot's worker accepts.
    private func enforceLimits() {
        self.nextCheckInterval = nil
        let now = monotonicSeconds()
        if var worker = self.recycled {
            if !worker.killed, now >= worker.killAt {
                self.logger.warning(
                    "SG1014: recycled worker \(worker.slot) (pid \(worker.pid)) still running \(formatSeconds(Self.killGrace)) after graceful-timeout \(formatSeconds(self.settings.gracefulTimeout)): SIGKILL"
                )
                kill(worker.pid, SIGKILL)
                worker.killed = true
                self.recycled = worker
            }
        }
        guard self.policy.isActive else { return }
        if self.policy.maximumRequests > 0 { self.nextCheckInterval = Self.requestCountInterval }
        let nowNanoseconds = monotonicNanoseconds()
        var activities: [WorkerActivity?] = []
        var schedule: [RecycleSchedule.Slot] = []
        for slot in self.slots {
            let activity = slot.entry.flatMap { self.scoreboard?.activity(ofWorker: $0) }
            activities.append(activity)
            schedule.append(
                RecycleSchedule.Slot(
                    hasWorker: slot.pid != nil,
                    // Without a scoreboard there is no telling: taken as accepting.
                    isAccepting: activity?.isAccepting ?? true,
                    startedAt: slot.startedAt,
                    due: slot.pid == nil
                        ? nil
                        : self.policy.reason(
                            limits: slot.limits, age: now - slot.startedAt, activity: activity, now: nowNanoseconds)
                ))
        }
        let served = activities.reduce(0) { $0 + ($1?.requestsServed ?? 0) }
        if self.policy.maximumRequests > 0, served != self.servedAtLastCheck {
            self.nextCheckInterval = Self.busyCheckInterval
        }
        self.servedAtLastCheck = served
        switch RecycleSchedule.decide(slots: schedule, recycleUnderWay: self.recycled != nil) {
        case .nothing:
            break
        case .waitForReplacement:
            self.nextCheckInterval = Self.readinessCheckInterval
        case .recycle(let slot, let reason):
            self.recycle(slot: slot, reason: reason, activity: activities[slot], now: now)
        }
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
        self.recycled = RecycledWorker(
            pid: pid, slot: index, entry: self.slots[index].entry,
            killAt: now + self.settings.gracefulTimeout + Self.killGrace)
        self.slots[index].pid = nil
        self.slots[index].entry = nil
        self.slots[index].restartAt = now
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
