import Logging

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The group's limits, enforced on its workers from outside: recycles (one at a time, the oldest
/// due first, only while every slot's worker accepts), request timeouts, and the kills for what
/// cannot wait.
extension Supervisor {
    /// Kills what must be killed, gives up on requests past request-timeout, and recycles the
    /// worker that reached a limit first, when no recycle is under way and every slot's worker
    /// accepts.
    func enforceLimits() {
        self.nextCheckInterval = nil
        let now = monotonicSeconds()
        let nowNanoseconds = monotonicNanoseconds()
        self.killDrainingWorkersPastTheirTime(now: now)
        let sampling = now - self.lastSampleAt >= Self.sampleInterval || self.policy.memoryLimit > 0
        if sampling { self.lastSampleAt = now }

        var activities: [WorkerActivity?] = []
        var schedule: [RecycleSchedule.Slot] = []
        // Slots in the schedule: those with a worker or one due (an idle extra slot has neither).
        var scheduled: [Int] = []
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
                    // An idle extra worker exits instead (scaling down), it is not replaced.
                    if case .inactivity = due, !self.scaling.isKept(slot: index) { due = nil }
                }
            }
            guard self.slots[index].isActive else { continue }
            scheduled.append(index)
            schedule.append(
                RecycleSchedule.Slot(
                    hasWorker: self.slots[index].pid != nil && self.slots[index].killedBecause == nil,
                    // Without a scoreboard there is no telling: taken as accepting.
                    isAccepting: activity?.isAccepting ?? true,
                    startedAt: self.slots[index].startedAt,
                    due: due
                ))
        }
        self.reviewDrainingWorkers(sampling: sampling, nowNanoseconds: nowNanoseconds, wakeAt: &wakeAt)
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
        let recycleUnderWay = self.draining.contains { $0.cause == .recycle } || self.roll != nil
        switch RecycleSchedule.decide(slots: schedule, recycleUnderWay: recycleUnderWay) {
        case .nothing:
            break
        case .waitForReplacement:
            interval = min(interval, Self.readinessCheckInterval)
        case .recycle(let position, let reason):
            let slot = scheduled[position]
            self.recycle(slot: slot, reason: reason, activity: activities[slot], now: now)
        }
        self.nextCheckInterval = max(0, min(interval, self.nextCheckInterval ?? interval))
        self.lastActivities = activities
    }

    private func killDrainingWorkersPastTheirTime(now: Double) {
        for index in self.draining.indices where !self.draining[index].killed && now >= self.draining[index].killAt {
            let worker = self.draining[index]
            self.logger.warning(
                "SG1014: draining worker \(worker.slot) (pid \(worker.pid)) still running \(formatSeconds(Self.killGrace)) after graceful-timeout \(formatSeconds(self.settings.gracefulTimeout)): SIGKILL"
            )
            kill(worker.pid, SIGKILL)
            self.draining[index].killed = true
        }
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

    /// A draining worker's requests time out too, and its memory is watched while it drains.
    private func reviewDrainingWorkers(sampling: Bool, nowNanoseconds: Int64, wakeAt: inout Double) {
        for index in self.draining.indices where !self.draining[index].killed {
            let worker = self.draining[index]
            if case .kill(let ranFor) = self.reviewRequests(
                ofWorker: worker.pid, slot: worker.slot, entry: worker.entry, nowNanoseconds: nowNanoseconds,
                wakeAt: &wakeAt)
            {
                self.killBlockedWorker(pid: worker.pid, name: "draining worker \(worker.slot)", ranFor: ranFor)
                self.draining[index].killed = true
                continue
            }
            guard sampling, !self.condemned.contains(where: { $0.pid == worker.pid }) else { continue }
            _ = self.sample(pid: worker.pid, entry: worker.entry, name: "draining worker \(worker.slot)")
        }
    }

    /// Stops a worker above 1.5 × memory-limit from accepting (it drains), to kill it once only
    /// the request that grew is left (`killCondemnedWorkers`).
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
            if let index = self.draining.firstIndex(where: { $0.pid == worker.pid }) {
                self.draining[index].killed = true
            }
        }
        self.condemned = waiting
    }

    /// Whether a condemned worker's other requests are done and one remains that has run longer
    /// than a short request would (the one that grew, most likely). With none running it is not
    /// killed: the board shows a request only once the worker admitted it, so one it has read
    /// from a kept connection would be lost (Apache cannot send again what the worker read); it
    /// exits by itself once drained, within `condemnedGrace` or it is killed then.
    private func onlyTheCulpritRemains(in worker: CondemnedWorker) -> Bool {
        guard let entry = worker.entry, let board = self.scoreboard else { return true }
        let running = board.runningRequests(ofWorker: entry)
        guard running.count == 1, let request = running.first else { return false }
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
        self.drain(slot: index, cause: .recycle, now: now)
        self.slots[index].restartAt = now
        self.slots[index].lastExit = "recycled: \(reason.summary) after \(formatSeconds(age))"
        // A worker that lived to its recycle was healthy: a later crash starts a fresh backoff.
        self.slots[index].backoff = RestartBackoff()
        self.startDueWorkers()
    }
}
