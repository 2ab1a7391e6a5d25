import Logging
import NIOCore

/// What the application gets beside the request.
public struct GatewayContext: Sendable {
    /// Lines logged here reach Apache's error log with the request's context.
    public var logger: Logger
    public var allocator: ByteBufferAllocator
    /// The process group serving the request (`SwiftDaemonProcess` name).
    public var group: String
    /// Apache's id for the request, also in its access and error logs.
    public var requestID: String

    public init(logger: Logger, allocator: ByteBufferAllocator = .init(), group: String, requestID: String) {
        self.logger = logger
        self.allocator = allocator
        self.group = group
        self.requestID = requestID
    }
}
