import Logging
import NIOCore

/// Sends a request's log lines as FastCGI STDERR records; Apache writes each line to its
/// error log with the request's context (client, URL, group).
struct FastCGIStandardErrorLogHandler: LogHandler {
    var logLevel: Logger.Level = .info
    let channel: any Channel
    private let requestID: String?
    /// The metadata once the application changed it; until then only `request=`, which is not
    /// built for a request that never logs or looks.
    private var changedMetadata: Logger.Metadata?

    /// - Parameter requestID: Apache's id of the request, logged as `request=` metadata.
    init(channel: any Channel, requestID: String?) {
        self.channel = channel
        self.requestID = requestID
    }

    /// The logger of one request on `channel` (label `app`).
    static func requestLogger(channel: any Channel, requestID: String) -> Logger {
        Logger(label: "app") { _ in FastCGIStandardErrorLogHandler(channel: channel, requestID: requestID) }
    }

    var metadata: Logger.Metadata {
        get { self.changedMetadata ?? self.requestID.map { ["request": .string($0)] } ?? [:] }
        set { self.changedMetadata = newValue }
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { self.metadata[key] }
        set { self.metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        let message = LogLineFormat.messageWithMetadata(event, handlerMetadata: self.metadata)
        let line = "\(LogLineFormat.apacheLevel(event.level)): \(message)\n"
        let buffer = self.channel.allocator.buffer(string: line)
        self.channel.writeResponsePart(.stderr(buffer), promise: nil)
    }
}
