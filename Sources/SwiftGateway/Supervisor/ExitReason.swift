#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Why a child process ended, from its `waitpid` status.
enum ExitReason: Equatable, Sendable, CustomStringConvertible {
    case exited(code: CInt)
    case signalled(signal: CInt, coreDumped: Bool)

    init(waitStatus status: CInt) {
        // The W* macros are not imported into Swift; these are their Linux definitions.
        let termination = status & 0x7f
        if termination == 0 {
            self = .exited(code: (status >> 8) & 0xff)
        } else {
            self = .signalled(signal: termination, coreDumped: (status & 0x80) != 0)
        }
    }

    var description: String {
        switch self {
        case .exited(let code):
            return "exited with status \(code)"
        case .signalled(let signal, let coreDumped):
            let name = signalName(signal)
            return "killed by signal \(signal) (\(name))" + (coreDumped ? ", core dumped" : "")
        }
    }
}

/// The conventional name of a signal (`SIGKILL`), or its number.
func signalName(_ signal: CInt) -> String {
    switch signal {
    case SIGHUP: return "SIGHUP"
    case SIGINT: return "SIGINT"
    case SIGQUIT: return "SIGQUIT"
    case SIGILL: return "SIGILL"
    case SIGTRAP: return "SIGTRAP"
    case SIGABRT: return "SIGABRT"
    case SIGBUS: return "SIGBUS"
    case SIGFPE: return "SIGFPE"
    case SIGKILL: return "SIGKILL"
    case SIGSEGV: return "SIGSEGV"
    case SIGPIPE: return "SIGPIPE"
    case SIGALRM: return "SIGALRM"
    case SIGTERM: return "SIGTERM"
    case SIGXCPU: return "SIGXCPU"
    default: return "signal \(signal)"
    }
}
