/// Which worker the supervisor recycles next: one at a time, the oldest due first, and only
/// while every slot's worker accepts (so that never more than one slot is without one).
enum RecycleSchedule {
    /// One slot as the supervisor sees it.
    struct Slot: Equatable, Sendable {
        /// Whether the slot has a worker (false while a restart waits).
        var hasWorker: Bool
        /// Whether its worker accepts yet (published on the scoreboard).
        var isAccepting: Bool
        /// When its worker started (monotonic seconds).
        var startedAt: Double
        /// The limit its worker reached, if any.
        var due: RecycleReason?
    }

    enum Decision: Equatable, Sendable {
        /// Nothing is due, or a recycled worker still drains.
        case nothing
        /// A worker is due, but some slot's worker does not accept yet: look again soon.
        case waitForReplacement
        /// Recycle the worker of this slot now.
        case recycle(slot: Int, reason: RecycleReason)
    }

    static func decide(slots: [Slot], recycleUnderWay: Bool) -> Decision {
        if recycleUnderWay { return .nothing }
        var oldest: (slot: Int, reason: RecycleReason)?
        for (index, slot) in slots.enumerated() where slot.hasWorker && slot.isAccepting {
            guard let reason = slot.due else { continue }
            if let current = oldest, slots[current.slot].startedAt <= slot.startedAt { continue }
            oldest = (index, reason)
        }
        guard let oldest else { return .nothing }
        guard slots.allSatisfy({ $0.hasWorker && $0.isAccepting }) else { return .waitForReplacement }
        return .recycle(slot: oldest.slot, reason: oldest.reason)
    }
}
