import Logging

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Writes one line per message to stderr, which Apache's parent points at its error log.
///
/// The line looks like Apache's own: `[swift_gateway:LEVEL] [pid N] [group G role R] message`,
/// without a timestamp because the error log adds none to piped stderr lines.
struct StandardErrorLogHandler: LogHandler {
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level
    private let prefix: String

    init(label: String, group: String, role: String, logLevel: Logger.Level = .info) {
        self.logLevel = logLevel
        self.prefix = "[group \(group)] [\(role)] [\(label)]"
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { self.metadata[key] }
        set { self.metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var line = "[swift_gateway:\(Self.apacheLevel(event.level))] [pid \(getpid())] \(self.prefix) \(event.message)"
        let merged = self.metadata.merging(event.metadata ?? [:]) { $1 }
        if !merged.isEmpty {
            line += " " + merged.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
        }
        FileDescriptorOutput.standardError.write(line + "\n")
    }

    /// Apache's names for the levels, so `LogLevel` readers recognise them.
    static func apacheLevel(_ level: Logger.Level) -> String {
        switch level {
        case .trace: return "trace1"
        case .debug: return "debug"
        case .info: return "info"
        case .notice: return "notice"
        case .warning: return "warn"
        case .error: return "error"
        case .critical: return "crit"
        }
    }
}
