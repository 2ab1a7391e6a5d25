import Logging
import NIOCore

/// Sends a request's log lines as FastCGI STDERR records; Apache writes each line to its
/// error log with the request's context (client, URL, group).
struct FastCGIStandardErrorLogHandler: LogHandler {
    var logLevel: Logger.Level = .info
    let channel: any Channel
    /// Apache's id of the request, logged as `request=` metadata; held apart from `otherMetadata`
    /// so that the logger every request gets costs no dictionary.
    private var requestID: String?
    private var otherMetadata: Logger.Metadata = [:]

    init(channel: any Channel, requestID: String?) {
        self.channel = channel
        self.requestID = requestID
    }

    var metadata: Logger.Metadata {
        get {
            guard let requestID, self.otherMetadata["request"] == nil else { return self.otherMetadata }
            var all = self.otherMetadata
            all["request"] = .string(requestID)
            return all
        }
        set {
            self.requestID = nil
            self.otherMetadata = newValue
        }
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get {
            if key == "request", self.otherMetadata[key] == nil, let requestID { return .string(requestID) }
            return self.otherMetadata[key]
        }
        set {
            if key == "request" { self.requestID = nil }
            self.otherMetadata[key] = newValue
        }
    }

    func log(event: LogEvent) {
        let message = LogLineFormat.messageWithMetadata(event, handlerMetadata: self.metadata)
        let line = "\(LogLineFormat.apacheLevel(event.level)): \(message)\n"
        let buffer = self.channel.allocator.buffer(string: line)
        self.channel.writeAndFlush(FastCGIResponsePart.stderr(buffer), promise: nil)
    }
}
