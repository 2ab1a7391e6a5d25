/// The limits one worker is recycled at: the group's, or for the first workers of a group a
/// share of them (see `RecyclePolicy.limits(slot:firstOfSlot:)`).
struct WorkerLimits: Equatable, Sendable {
    /// Requests served; nil: no limit.
    var maximumRequests: Int?
    /// Seconds of life; nil: no limit.
    var lifetime: Double?
}
