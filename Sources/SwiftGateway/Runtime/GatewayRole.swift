#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Which of the program's roles this process plays, decided by how it was started.
enum GatewayRole: Equatable, Sendable {
    /// Started by Apache's parent: keeps the group's workers running.
    case supervisor
    /// Started by the supervisor: accepts requests on the group socket (fd 3).
    case worker
    /// Started by hand without Apache.
    case unmanaged

    /// Reads `SWIFT_GATEWAY_ROLE`; anything else than the two managed roles is unmanaged.
    static func current(environment: [String: String]) -> GatewayRole {
        switch environment["SWIFT_GATEWAY_ROLE"] {
        case "supervisor": return .supervisor
        case "worker": return .worker
        default: return .unmanaged
        }
    }
}

/// The process environment as a dictionary (a snapshot: setenv later does not change it).
func processEnvironment() -> [String: String] {
    var result: [String: String] = [:]
    var pointer = environ
    while let entry = pointer.pointee {
        let pair = String(cString: entry)
        if let separator = pair.firstIndex(of: "=") {
            result[String(pair[..<separator])] = String(pair[pair.index(after: separator)...])
        }
        pointer += 1
    }
    return result
}
