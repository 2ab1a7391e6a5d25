import Logging
import NIOCore

/// Sends a request's log lines as FastCGI STDERR records; Apache writes each line to its
/// error log with the request's context (client, URL, group).
struct FastCGIStandardErrorLogHandler: LogHandler {
    var metadata: Logger.Metadata
    var logLevel: Logger.Level = .info
    let channel: any Channel

    /// - Parameter requestID: Apache's id of the request, logged as `request=` metadata.
    init(channel: any Channel, requestID: String?) {
        self.channel = channel
        self.metadata = requestID.map { ["request": .string($0)] } ?? [:]
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { self.metadata[key] }
        set { self.metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        let message = LogLineFormat.messageWithMetadata(event, handlerMetadata: self.metadata)
        let line = "\(LogLineFormat.apacheLevel(event.level)): \(message)\n"
        let buffer = self.channel.allocator.buffer(string: line)
        self.channel.writeAndFlush(FastCGIResponsePart.stderr(buffer), promise: nil)
    }
}
