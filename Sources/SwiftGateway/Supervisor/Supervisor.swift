import Logging

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Keeps a group's workers running: starts `processes` of them, replaces each one that exits
/// (with backoff when they keep dying young), logs every exit, and drains them on SIGTERM.
///
/// It runs on one thread as a `poll` loop over the signal pipe: a supervisor must stay
/// responsive whatever its workers do, so it does no other work and holds no locks.
final class Supervisor {
    private struct WorkerSlot {
        var pid: pid_t?
        var startedAt: Double = 0
        var restartAt: Double? = 0
        var backoff = RestartBackoff()
    }

    private let settings: GroupSettings
    private var spawner: WorkerSpawner
    private var scoreboard: GroupScoreboard?
    private let logger: Logger
    private let parentPID = getppid()
    private var slots: [WorkerSlot]

    init(settings: GroupSettings, spawner: WorkerSpawner, logger: Logger) {
        self.settings = settings
        self.spawner = spawner
        self.logger = logger
        self.slots = Array(repeating: WorkerSlot(), count: settings.processes)
    }

    /// Runs until told to stop, then exits the process.
    func run() -> Never {
        do {
            try SignalPipe.install([SIGTERM, SIGINT, SIGHUP])
            try Self.makeListenerNonBlocking()
        } catch {
            self.logger.critical("SG1001: supervisor cannot start: \(error)")
            exit(1)
        }
        do {
            let (board, descriptor) = try GroupScoreboard.create(workers: self.settings.processes)
            self.scoreboard = board
            self.spawner.shareScoreboard(descriptor)
        } catch {
            self.logger.warning(
                "SG1012: cannot create the group's scoreboard: \(error); while its slots are full a worker turns away every request on a kept connection"
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
            for signalNumber in SignalPipe.drain() {
                self.logger.info("SG1003: received \(signalName(signalNumber)): stopping workers")
                self.shutdown()
            }
            self.reapExitedWorkers()
            if getppid() != self.parentPID {
                self.logger.error("SG1004: Apache's parent process (pid \(self.parentPID)) is gone: stopping workers")
                self.shutdown()
            }
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
            do {
                let pid = try self.spawner.spawn(index: index)
                self.slots[index].pid = pid
                self.slots[index].startedAt = now
                self.slots[index].restartAt = nil
                self.logger.info("SG1005: started worker \(index) (pid \(pid))")
            } catch {
                let delay = self.slots[index].backoff.delay(afterLifetime: 0)
                self.slots[index].restartAt = now + delay
                self.logger.error("SG1006: cannot start worker \(index): \(error); retrying in \(delay)s")
            }
        }
    }

    /// Until the next delayed restart, at most half a second (to notice a lost parent).
    private func nextTimeout() -> Double {
        let now = monotonicSeconds()
        let nextRestart = self.slots.compactMap { $0.pid == nil ? $0.restartAt : nil }.min()
        return max(0, min(0.5, (nextRestart ?? .infinity) - now))
    }

    private func waitForEvents(timeout: Double) {
        var descriptor = pollfd(fd: SignalPipe.descriptor, events: Int16(POLLIN), revents: 0)
        _ = poll(&descriptor, 1, CInt(timeout * 1000))
    }

    private func reapExitedWorkers() {
        while let (pid, reason) = reapOne(blocking: false) {
            guard let index = self.slots.firstIndex(where: { $0.pid == pid }) else { continue }
            let now = monotonicSeconds()
            let lifetime = now - self.slots[index].startedAt
            let delay = self.slots[index].backoff.delay(afterLifetime: lifetime)
            self.slots[index].pid = nil
            self.slots[index].restartAt = now + delay
            // Its siblings must not turn requests away towards a worker that is gone.
            self.scoreboard?.setRoom(0, ofWorker: index)
            let level: Logger.Level = reason == .exited(code: 0) ? .notice : .error
            self.logger.log(
                level: level,
                "SG1007: worker \(index) (pid \(pid)) \(reason) after \(formatSeconds(lifetime)); restarting in \(formatSeconds(delay))"
            )
        }
    }

    /// SIGTERM to every worker, SIGKILL to those still there after `shutdown-timeout`, then exit.
    private func shutdown() -> Never {
        let running = self.slots.compactMap(\.pid)
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
