#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A rolling restart under way: the build it brings in, and the worker of that build starting
/// beside the one it replaces.
struct RollingRestart {
    /// What asked for it.
    enum Trigger: Equatable, Sendable, CustomStringConvertible {
        /// `reload=on` saw the program file replaced by another build.
        case programChanged(FileIdentity)
        /// SIGHUP to the supervisor.
        case signal
        /// `restart-file=` was touched.
        case restartFile

        var description: String {
            switch self {
            case .programChanged(let identity): return "the program file changed (\(identity))"
            case .signal: return "SIGHUP"
            case .restartFile: return "the restart file was touched"
            }
        }
    }

    /// A worker of the new build, started for `slot`, not accepting yet.
    struct Successor {
        let slot: Int
        let pid: pid_t
        let entry: Int
        let startedAt: Double
        /// Its start was given up on (startup-timeout): reaped quietly.
        var killed = false
    }

    let image: ProgramImage
    let trigger: Trigger
    let startedAt: Double
    var successor: Successor?
    /// A worker of the new build accepted: workers started from now on run it.
    var isProven = false
    var replaced = 0
    /// When the next successor may start after one died (a proven build that still crashed).
    var retryAt = 0.0
}
