import Logging

/// How the runtime's log handlers spell a message and its metadata on one line.
enum LogLineFormat {
    /// `message key=value key=value`, the handler's metadata overridden by the event's.
    static func messageWithMetadata(_ event: LogEvent, handlerMetadata: Logger.Metadata) -> String {
        let merged = handlerMetadata.merging(event.metadata ?? [:]) { $1 }
        guard !merged.isEmpty else { return "\(event.message)" }
        let pairs = merged.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
        return "\(event.message) \(pairs)"
    }
}
