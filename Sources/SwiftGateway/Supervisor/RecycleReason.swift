/// Why the supervisor recycles a worker: which of the group's limits it reached.
enum RecycleReason: Equatable, Sendable, CustomStringConvertible {
    /// It served `limit` requests (`maximum-requests=`, staggered).
    case maximumRequests(limit: Int)
    /// It lived `limit` seconds (`restart-interval=`, staggered).
    case restartInterval(limit: Double)
    /// It served no request for `idleFor` seconds, `inactivity-timeout=` being `limit`.
    case inactivity(idleFor: Double, limit: Double)

    var description: String {
        switch self {
        case .maximumRequests(let limit):
            return "maximum-requests reached (\(limit) for this worker)"
        case .restartInterval(let limit):
            return "restart-interval reached (\(formatSeconds(limit)) for this worker)"
        case .inactivity(let idleFor, let limit):
            return "inactivity-timeout reached (idle for \(formatSeconds(idleFor)), limit \(formatSeconds(limit)))"
        }
    }
}
