/// Why the supervisor recycles a worker: which of the group's limits it reached.
enum RecycleReason: Equatable, Sendable, CustomStringConvertible {
    /// It served `limit` requests (`maximum-requests=`, staggered).
    case maximumRequests(limit: Int)
    /// It lived `limit` seconds (`restart-interval=`, staggered).
    case restartInterval(limit: Double)
    /// It served no request for `idleFor` seconds, `inactivity-timeout=` being `limit`.
    case inactivity(idleFor: Double, limit: Double)
    /// Its resident memory passed `memory-limit=` (bytes).
    case memoryLimit(resident: Int, limit: Int)
    /// Its CPU time reached `cpu-time-limit=` (seconds).
    case cpuTimeLimit(used: Double, limit: Int)
    /// A request it was told to give up on (`request-timeout=`) still held its slot a second later.
    case requestStuck(ranFor: Double, limit: Double)

    /// A few words for the scoreboard's "last exit" of the slot.
    var summary: String {
        switch self {
        case .maximumRequests(let limit): return "maximum-requests \(limit)"
        case .restartInterval(let limit): return "restart-interval \(formatSeconds(limit))"
        case .inactivity(_, let limit): return "inactivity-timeout \(formatSeconds(limit))"
        case .memoryLimit(let resident, _): return "memory-limit (RSS \(ResidentMemory.describe(resident)))"
        case .cpuTimeLimit(_, let limit): return "cpu-time-limit \(limit)s"
        case .requestStuck(_, let limit): return "request-timeout \(formatSeconds(limit)), stuck request"
        }
    }

    var description: String {
        switch self {
        case .maximumRequests(let limit):
            return "maximum-requests reached (\(limit) for this worker)"
        case .restartInterval(let limit):
            return "restart-interval reached (\(formatSeconds(limit)) for this worker)"
        case .inactivity(let idleFor, let limit):
            return "inactivity-timeout reached (idle for \(formatSeconds(idleFor)), limit \(formatSeconds(limit)))"
        case .memoryLimit(let resident, let limit):
            return
                "memory-limit passed (RSS \(ResidentMemory.describe(resident)), limit \(ResidentMemory.describe(limit)))"
        case .cpuTimeLimit(let used, let limit):
            return "cpu-time-limit reached (\(formatSeconds(used)) of CPU, limit \(limit)s)"
        case .requestStuck(let ranFor, let limit):
            return
                "request-timeout: a request cancelled at \(formatSeconds(limit)) is still running after \(formatSeconds(ranFor)), the worker is stuck"
        }
    }
}
