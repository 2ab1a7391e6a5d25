// SwiftNIO's own floor behind mod_swift_gateway, for `make bench`'s `gateway-nio-floor`: what a
// request costs when the worker is a SwiftNIO channel that does nothing but answer.
//
// A worker of bench/null_worker.c's supervisor (SG_NULL_WORKER_PROGRAM names this program; fd 3
// is the group's listening socket): one event loop with one `ChannelInboundHandler` per
// connection, on a `ServerBootstrap` over fd 3 (which sets SwiftNIO's own listen backlog). It
// passes over FastCGI records without keeping them and answers each request at its empty STDIN
// record with the bench's hello in one `writeAndFlush`, keeping the connection. No record
// decoder, no token, no slots, no task, no CGI variables, no application: the distance between
// this and `gateway` is the worker's own request path, and between this and `gateway-floor`
// (the same in C) SwiftNIO's. Bench only.

import NIOCore
import NIOPosix

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A line on stderr (Apache's error log).
func complain(_ message: String) {
    var line = "NIOFloorWorker: \(message)\n"
    line.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
}

/// Passes over FastCGI records and answers each request when its STDIN ends.
final class NullFastCGIHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private static let version: UInt8 = 1
    private static let stdinType: UInt8 = 5
    /// `FastCGIServerCodec.keptConnectionAppStatus`: "SGKA", the connection stays open.
    private static let keptConnectionAppStatus: UInt32 = 0x5347_4B41

    /// STDOUT with the whole answer, the empty STDOUT, END_REQUEST; the request ID in each
    /// record header is filled in per request.
    private let answer: [UInt8]
    private let recordOffsets: [Int]
    /// A record header split between two reads, big-endian, and how many of its bytes came.
    private var partialHeader: UInt64 = 0
    private var partialHeaderBytes = 0
    private var bytesToSkip = 0

    init(answerBody: String) {
        let stdout = Array(answerBody.utf8)
        var answer = Self.recordHeader(type: 6, length: stdout.count) + stdout
        let emptyStdout = answer.count
        answer += Self.recordHeader(type: 6, length: 0)
        let end = answer.count
        answer += Self.recordHeader(type: 3, length: 8)
        answer += withUnsafeBytes(of: Self.keptConnectionAppStatus.bigEndian, Array.init) + [0, 0, 0, 0]
        self.answer = answer
        self.recordOffsets = [0, emptyStdout, end]
    }

    private static func recordHeader(type: UInt8, length: Int) -> [UInt8] {
        [Self.version, type, 0, 0, UInt8(truncatingIfNeeded: length >> 8), UInt8(truncatingIfNeeded: length), 0, 0]
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = self.unwrapInboundIn(data)
        while buffer.readableBytes > 0 {
            if self.bytesToSkip > 0 {
                let skipped = min(self.bytesToSkip, buffer.readableBytes)
                buffer.moveReaderIndex(forwardBy: skipped)
                self.bytesToSkip -= skipped
                continue
            }
            let header: UInt64
            if self.partialHeaderBytes == 0, let whole = buffer.readInteger(as: UInt64.self) {
                header = whole
            } else {
                guard let byte = buffer.readInteger(as: UInt8.self) else { return }
                self.partialHeader = self.partialHeader << 8 | UInt64(byte)
                self.partialHeaderBytes += 1
                guard self.partialHeaderBytes == 8 else { continue }
                header = self.partialHeader
                self.partialHeader = 0
                self.partialHeaderBytes = 0
            }
            guard UInt8(truncatingIfNeeded: header >> 56) == Self.version else {
                complain("FastCGI version \(header >> 56); closing the connection")
                context.close(promise: nil)
                return
            }
            let contentLength = Int(truncatingIfNeeded: (header >> 16) & 0xFFFF)
            self.bytesToSkip = contentLength + Int(truncatingIfNeeded: (header >> 8) & 0xFF)
            if UInt8(truncatingIfNeeded: header >> 48) == Self.stdinType && contentLength == 0 {
                self.respond(requestID: UInt16(truncatingIfNeeded: header >> 32), context: context)
            }
        }
    }

    private func respond(requestID: UInt16, context: ChannelHandlerContext) {
        var out = context.channel.allocator.buffer(capacity: self.answer.count)
        out.writeBytes(self.answer)
        for offset in self.recordOffsets {
            out.setInteger(requestID, at: offset + 2)
        }
        context.writeAndFlush(self.wrapOutboundOut(out), promise: nil)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}

/// One event loop serving fd 3 until SIGTERM ends the process.
func serve() throws -> Never {
    let body = "Status: 200 OK\r\nContent-Type: text/plain\r\nX-Gateway-Pid: \(getpid())\r\n\r\nHello world!\n"
    let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    let server = try ServerBootstrap(group: group)
        .childChannelInitializer { channel in
            channel.eventLoop.makeCompletedFuture {
                try channel.pipeline.syncOperations.addHandler(NullFastCGIHandler(answerBody: body))
            }
        }
        .withBoundSocket(3)
        .wait()
    try server.closeFuture.wait()
    exit(0)
}

signal(SIGPIPE, SIG_IGN)
try serve()
