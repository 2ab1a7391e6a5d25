import Logging
import NIOCore

/// What the application gets beside the request.
public struct GatewayContext: Sendable {
    /// Lines logged here reach Apache's error log with the request's context, at the Apache
    /// level of theirs (`warning` at `warn`, …), with `request=` (Apache's `%L`), `group=` and
    /// `pid=` metadata. Lines below the module's `LogLevel` are not sent.
    ///
    /// Under Apache each read makes the request's logger (two small allocations), so that a
    /// request that never logs pays nothing for it: keep it in a local to log many lines.
    /// Setting it keeps the one set.
    public var logger: Logger {
        get {
            switch self.loggerSource {
            case .given(let logger, _): logger
            case .fastCGI(let channel, let logLevel):
                FastCGIStandardErrorLogHandler.requestLogger(
                    channel: channel, requestID: self.requestID, group: self.group, logLevel: logLevel)
            }
        }
        set { self.loggerSource = .given(newValue, channel: self.channel) }
    }
    /// The connection the request came on: Apache's FastCGI connection to the worker, or the
    /// client's under `--http`; nil when the context was made without one. For frameworks whose
    /// request context needs a `Channel` (the Hummingbird adapter). Its addresses are those of
    /// the connection, not the client's: the client's are `REMOTE_ADDR` and `REMOTE_PORT`.
    public var channel: (any Channel)? {
        switch self.loggerSource {
        case .given(_, let channel): channel
        case .fastCGI(let channel, _): channel
        }
    }
    public var allocator: ByteBufferAllocator
    /// The process group serving the request (`SwiftDaemonProcess` name).
    public var group: String
    /// Apache's id for the request, also in its access and error logs.
    public var requestID: String

    private var loggerSource: LoggerSource

    /// Where `logger` comes from: one given, or made on demand for a FastCGI connection.
    private enum LoggerSource: Sendable {
        case given(Logger, channel: (any Channel)?)
        case fastCGI(any Channel, logLevel: Logger.Level)
    }

    public init(
        logger: Logger, allocator: ByteBufferAllocator = .init(), group: String, requestID: String,
        channel: (any Channel)? = nil
    ) {
        self.loggerSource = .given(logger, channel: channel)
        self.allocator = allocator
        self.group = group
        self.requestID = requestID
    }

    /// A request of a FastCGI connection: its log lines from `logLevel` up go to Apache as
    /// `FCGI_STDERR` records.
    init(channel: any Channel, group: String, requestID: String, logLevel: Logger.Level = .info) {
        self.loggerSource = .fastCGI(channel, logLevel: logLevel)
        self.allocator = channel.allocator
        self.group = group
        self.requestID = requestID
    }
}
