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
        let message = LogLineFormat.messageWithMetadata(event, handlerMetadata: self.metadata)
        let level = ApacheLogLevel.name(of: event.level)
        FileDescriptorOutput.standardError.write(
            "[swift_gateway:\(level)] [pid \(getpid())] \(self.prefix) \(message)\n")
    }
}
