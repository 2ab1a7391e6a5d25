/// Why the supervisor replaced a worker on purpose, as the scoreboard counts it; the raw values
/// are those of `enum sg_recycle_reason` in `sg_scoreboard.h` (a unit test checks).
enum RecycleCounter: Int32, CaseIterable, Sendable {
    case maximumRequests = 0
    case restartInterval = 1
    case inactivity = 2
    case memoryLimit = 3
    case cpuTimeLimit = 4
    /// A request it could not end after request-timeout.
    case requestTimeout = 5
    /// A rolling restart onto a new build.
    case rollingRestart = 6
    /// An extra worker idle: drained, not replaced.
    case scaledDown = 7

    init(_ reason: RecycleReason) {
        switch reason {
        case .maximumRequests: self = .maximumRequests
        case .restartInterval: self = .restartInterval
        case .inactivity: self = .inactivity
        case .memoryLimit: self = .memoryLimit
        case .cpuTimeLimit: self = .cpuTimeLimit
        case .requestStuck: self = .requestTimeout
        }
    }
}
