import Logging
import NIOCore

/// Sends a request's log lines as FastCGI STDERR records; Apache writes each line to its
/// error log with the request's context (client, URL, group).
struct FastCGIStandardErrorLogHandler: LogHandler {
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .info
    let channel: any Channel

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { self.metadata[key] }
        set { self.metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var line = "\(StandardErrorLogHandler.apacheLevel(event.level)): \(event.message)"
        let merged = self.metadata.merging(event.metadata ?? [:]) { $1 }
        if !merged.isEmpty {
            line += " " + merged.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
        }
        line += "\n"
        let buffer = self.channel.allocator.buffer(string: line)
        self.channel.writeAndFlush(FastCGIResponsePart.stderr(buffer), promise: nil)
    }
}
