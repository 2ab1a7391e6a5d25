/// When a group grows beyond `processes` workers and when it shrinks back.
///
/// It grows while requests queue: every request slot of every accepting worker has been busy
/// for `saturationTime` and no worker is starting; one worker at a time, at most one every
/// `startInterval`, up to `maximum-processes`. An extra worker (a slot from `processes` on)
/// that served no request for `idleLimit` exits, one at a time. A transient group
/// (`processes=0`) has only extra workers: its first starts when a connection waits.
struct GroupScaling: Sendable {
    /// How long an extra worker may idle when `inactivity-timeout` is 0.
    static let defaultIdleLimit = 30.0
    static let saturationTime = 0.1
    static let startInterval = 0.5
    /// How often a group that may grow is looked at while requests run.
    static let busyCheckInterval = 0.05

    /// What the scaler knows of one slot.
    struct Slot: Equatable, Sendable {
        /// It has a worker, or one due to start.
        var isActive = false
        /// Its worker accepts.
        var isAccepting = false
        /// Request slots free in its worker.
        var room = 0
        /// Requests its worker runs.
        var inFlight = 0
        /// Since when its worker has served no new request (monotonic nanoseconds).
        var idleSince: Int64 = 0
    }

    enum Decision: Equatable, Sendable {
        case nothing
        /// Look again within this many seconds.
        case lookAgain(within: Double)
        /// Start a worker in this (idle extra) slot.
        case start(slot: Int, busyFor: Double)
        /// The extra worker of this slot idled `idleFor` seconds: it exits.
        case stop(slot: Int, idleFor: Double)
    }

    let processes: Int
    let maximumProcesses: Int
    let idleLimit: Double
    private var saturatedSince: Double?
    private var lastStartAt = -Double.infinity

    init(processes: Int, maximumProcesses: Int, idleLimit: Double) {
        self.processes = processes
        self.maximumProcesses = max(processes, maximumProcesses)
        self.idleLimit = idleLimit
    }

    /// Whether the group may have more workers than `processes`.
    var isElastic: Bool { self.maximumProcesses > self.processes }

    /// Whether slot `index` keeps a worker whatever the load.
    func isKept(slot index: Int) -> Bool { index < self.processes }

    /// Whether the supervisor starts the first worker on demand: a transient group with none.
    func startsOnDemand(_ active: [Bool]) -> Bool { self.processes == 0 && !active.contains(true) }

    mutating func decide(slots: [Slot], now: Double, nowNanoseconds: Int64) -> Decision {
        guard self.isElastic else { return .nothing }
        let accepting = slots.filter(\.isAccepting)
        let starting = slots.contains { $0.isActive && !$0.isAccepting }
        let saturated = !accepting.isEmpty && accepting.allSatisfy { $0.room == 0 }
        guard saturated, !starting else {
            self.saturatedSince = nil
            return self.idleExtra(slots: slots, nowNanoseconds: nowNanoseconds)
        }
        let since = self.saturatedSince ?? now
        self.saturatedSince = since
        let due = max(since + Self.saturationTime, self.lastStartAt + Self.startInterval)
        guard now >= due else { return .lookAgain(within: due - now) }
        guard let free = slots.indices.first(where: { $0 >= self.processes && !slots[$0].isActive }) else {
            return .nothing
        }
        self.lastStartAt = now
        self.saturatedSince = nil
        return .start(slot: free, busyFor: now - since)
    }

    /// The extra worker idle longest past `idleLimit`, if any.
    private func idleExtra(slots: [Slot], nowNanoseconds: Int64) -> Decision {
        var longest: (slot: Int, idleFor: Double)?
        for index in slots.indices where index >= self.processes {
            let slot = slots[index]
            guard slot.isAccepting, slot.inFlight == 0 else { continue }
            let idleFor = Double(nowNanoseconds - slot.idleSince) / 1e9
            if idleFor >= self.idleLimit, idleFor > longest?.idleFor ?? -1 { longest = (index, idleFor) }
        }
        guard let longest else { return .nothing }
        return .stop(slot: longest.slot, idleFor: longest.idleFor)
    }
}
