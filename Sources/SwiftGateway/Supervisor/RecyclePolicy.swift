/// When the supervisor recycles a worker: the group's `maximum-requests=`, `restart-interval=`,
/// `inactivity-timeout=`, `memory-limit=` and `cpu-time-limit=`, applied to what each worker
/// publishes on the scoreboard and what the supervisor samples of it from /proc.
///
/// Staggering: workers started together (the group's first ones) would reach a request or age
/// limit together. The first worker of slot `i` of `processes` therefore gets `(i + 1) /
/// processes` of each limit, so the first recycles are spread over one limit's length; every
/// later worker (a replacement, a restart) gets the whole limit, so the recycles stay spread
/// and no worker ever goes beyond the configured limit. The supervisor also recycles one worker
/// at a time.
///
/// Idle: a worker that has served at least one request, has none holding a slot now and started
/// none for `inactivity-timeout` seconds. A worker that never served one is as fresh as its
/// replacement would be, so it is left alone: an idle group is recycled once, not forever.
struct RecyclePolicy: Equatable, Sendable {
    /// 0: no limit (as for the others).
    var maximumRequests: Int
    var restartInterval: Double
    var inactivityTimeout: Double
    var processes: Int
    /// Bytes of resident memory; 0: no limit.
    var memoryLimit: Int
    /// Seconds of CPU time; 0: no limit.
    var cpuTimeLimit: Int

    init(
        maximumRequests: Int, restartInterval: Double, inactivityTimeout: Double, processes: Int,
        memoryLimit: Int = 0, cpuTimeLimit: Int = 0
    ) {
        self.maximumRequests = maximumRequests
        self.restartInterval = restartInterval
        self.inactivityTimeout = inactivityTimeout
        self.processes = max(1, processes)
        self.memoryLimit = memoryLimit
        self.cpuTimeLimit = cpuTimeLimit
    }

    init(settings: GroupSettings) {
        self.init(
            maximumRequests: settings.maximumRequests, restartInterval: settings.restartInterval,
            inactivityTimeout: settings.inactivityTimeout, processes: settings.processes,
            memoryLimit: settings.memoryLimit, cpuTimeLimit: settings.cpuTimeLimit)
    }

    /// Whether any limit is set.
    var isActive: Bool {
        self.maximumRequests > 0 || self.restartInterval > 0 || self.inactivityTimeout > 0 || self.memoryLimit > 0
            || self.cpuTimeLimit > 0
    }

    /// Resident memory above which a worker is killed rather than recycled: 1.5 × memory-limit.
    var memoryKillThreshold: Int? { self.memoryLimit > 0 ? self.memoryLimit + self.memoryLimit / 2 : nil }

    /// The limits of the worker in `slot`; `firstOfSlot`: the slot's first worker, started with
    /// the group, which gets a staggered share.
    func limits(slot: Int, firstOfSlot: Bool) -> WorkerLimits {
        // The share is `parts / processes`.
        let parts = firstOfSlot ? min(max(slot, 0), self.processes - 1) + 1 : self.processes
        let requests = (self.maximumRequests * parts + self.processes - 1) / self.processes
        return WorkerLimits(
            maximumRequests: self.maximumRequests > 0 ? max(1, requests) : nil,
            lifetime: self.restartInterval > 0 ? self.restartInterval * Double(parts) / Double(self.processes) : nil
        )
    }

    /// Why a worker with `limits`, `age` seconds old, whose scoreboard entry says `activity`
    /// (nil: the group has no scoreboard) and whose last sample is `sample`, should be recycled
    /// now (`now`: monotonic nanoseconds); nil while it should not. Memory and CPU come first:
    /// they protect the machine.
    func reason(
        limits: WorkerLimits, age: Double, activity: WorkerActivity?, sample: ProcessSample = ProcessSample(),
        now: Int64
    ) -> RecycleReason? {
        if self.memoryLimit > 0, let resident = sample.residentBytes, resident > self.memoryLimit {
            return .memoryLimit(resident: resident, limit: self.memoryLimit)
        }
        if self.cpuTimeLimit > 0, let cpu = sample.cpuMicroseconds, cpu >= Int64(self.cpuTimeLimit) * 1_000_000 {
            return .cpuTimeLimit(used: Double(cpu) / 1e6, limit: self.cpuTimeLimit)
        }
        if let limit = limits.maximumRequests, let activity, activity.requestsServed >= limit {
            return .maximumRequests(limit: limit)
        }
        if let lifetime = limits.lifetime, age >= lifetime {
            return .restartInterval(limit: lifetime)
        }
        if self.inactivityTimeout > 0, let activity, activity.inFlight == 0, activity.lastRequestStart != 0 {
            let idleFor = Double(now - activity.lastRequestStart) / 1e9
            if idleFor >= self.inactivityTimeout {
                return .inactivity(idleFor: idleFor, limit: self.inactivityTimeout)
            }
        }
        return nil
    }
}
