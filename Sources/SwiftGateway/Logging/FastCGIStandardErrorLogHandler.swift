import Logging
import NIOCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Sends a request's log lines as FastCGI STDERR records; Apache writes each line to its
/// error log with the request's context (client, URL, group), at the level the line's prefix
/// names (`warn: …`, see `ApacheLogLevel`).
struct FastCGIStandardErrorLogHandler: LogHandler {
    /// Lines below it are not sent: the `LogLevel` in force for the module
    /// (`SWIFT_GATEWAY_LOG_LEVEL`), so Apache would drop them anyway.
    var logLevel: Logger.Level
    let channel: any Channel
    private let requestID: String?
    private let group: String?
    /// The metadata once the application changed it; until then `request=`, `group=` and
    /// `pid=`, which are not built for a request that never logs or looks.
    private var changedMetadata: Logger.Metadata?

    /// This worker's pid, as the lines spell it.
    private static let processID = String(getpid())

    /// - Parameters:
    ///   - requestID: Apache's id of the request (`%L`), logged as `request=` metadata.
    ///   - group: the process group, logged as `group=` metadata.
    init(channel: any Channel, requestID: String?, group: String? = nil, logLevel: Logger.Level = .info) {
        self.channel = channel
        self.requestID = requestID
        self.group = group
        self.logLevel = logLevel
    }

    /// The logger of one request on `channel` (label `app`).
    static func requestLogger(
        channel: any Channel, requestID: String, group: String, logLevel: Logger.Level = .info
    ) -> Logger {
        Logger(label: "app") { _ in
            FastCGIStandardErrorLogHandler(channel: channel, requestID: requestID, group: group, logLevel: logLevel)
        }
    }

    var metadata: Logger.Metadata {
        get { self.changedMetadata ?? self.requestMetadata }
        set { self.changedMetadata = newValue }
    }

    /// What every line of the request carries until the application changes the metadata.
    private var requestMetadata: Logger.Metadata {
        var metadata: Logger.Metadata = ["pid": .string(Self.processID)]
        if let requestID = self.requestID { metadata["request"] = .string(requestID) }
        if let group = self.group { metadata["group"] = .string(group) }
        return metadata
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { self.metadata[key] }
        set { self.metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        let message = LogLineFormat.messageWithMetadata(event, handlerMetadata: self.metadata)
        let line = "\(ApacheLogLevel.name(of: event.level)): \(message)\n"
        let buffer = self.channel.allocator.buffer(string: line)
        self.channel.writeResponsePart(.stderr(buffer), promise: nil)
    }
}
