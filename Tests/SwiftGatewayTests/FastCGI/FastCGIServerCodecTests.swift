import NIOCore
import NIOEmbedded
import XCTest

@testable import SwiftGateway

/// Sits behind the codec and records what reaches the worker.
private final class RequestPartRecorder: ChannelInboundHandler {
    typealias InboundIn = FastCGIRequestPart
    typealias OutboundOut = FastCGIResponsePart

    var parts: [FastCGIRequestPart] = []
    var errors: [any Error] = []
    /// Lets a test act like a worker from inside `channelRead`.
    var onPart: ((FastCGIRequestPart, ChannelHandlerContext) -> Void)?

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = Self.unwrapInboundIn(data)
        self.parts.append(part)
        self.onPart?(part, context)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        self.errors.append(error)
    }
}

final class FastCGIServerCodecTests: XCTestCase {
    private var channel: EmbeddedChannel!
    private var recorder: RequestPartRecorder!

    private let parameters: [(name: String, value: String)] = [
        (name: "REQUEST_METHOD", value: "POST"),
        (name: "SCRIPT_NAME", value: "/app"),
        (name: "HTTP_X_LONG", value: String(repeating: "h", count: 300)),
        (name: "SWIFT_GATEWAY_REQUEST_ID", value: "abc"),
    ]

    override func setUp() {
        super.setUp()
        self.makeChannel(FastCGIServerCodec())
    }

    override func tearDown() {
        // Also when the test (or the codec) closed it: finishing runs the loop, which takes the
        // handlers out of the pipeline; until then channel and pipeline hold each other.
        _ = try? self.channel.finish(acceptAlreadyClosed: true)
        self.channel = nil
        self.recorder = nil
        super.tearDown()
    }

    /// Replaces the channel; the one it replaces is finished first.
    private func makeChannel(_ codec: FastCGIServerCodec) {
        _ = try? self.channel?.finish(acceptAlreadyClosed: true)
        self.recorder = RequestPartRecorder()
        self.channel = EmbeddedChannel(handlers: [codec, self.recorder])
    }

    private var errors: [FastCGIError?] {
        self.recorder.errors.map { $0 as? FastCGIError }
    }

    private func fullRequest(id: UInt16 = 1, flags: UInt8 = 0, paramsRecordSize: Int = 50) -> ByteBuffer {
        FastCGITestWire.concatenate([
            FastCGITestWire.begin(id: id, flags: flags),
            FastCGITestWire.params(id: id, self.parameters, recordSize: paramsRecordSize),
            FastCGITestWire.record(.stdin, id: id, "hello "),
            FastCGITestWire.record(.stdin, id: id, "world"),
            FastCGITestWire.record(.stdin, id: id),
        ])
    }

    private func expectedParts(id: UInt16 = 1, keepConnection: Bool = false) -> [FastCGIRequestPart] {
        [
            .head(FastCGIRequestHead(requestID: id, keepConnection: keepConnection, parameters: self.parameters)),
            .body(ByteBuffer(string: "hello ")),
            .body(ByteBuffer(string: "world")),
            .end,
        ]
    }

    /// Consecutive body parts joined into one.
    private static func joiningBodies(_ parts: [FastCGIRequestPart]) -> [FastCGIRequestPart] {
        var joined: [FastCGIRequestPart] = []
        for part in parts {
            if case .body(let more) = part, case .body(var soFar) = joined.last {
                soFar.writeImmutableBuffer(more)
                joined[joined.count - 1] = .body(soFar)
            } else {
                joined.append(part)
            }
        }
        return joined
    }

    /// Everything the codec wrote, decoded back into records.
    private func writtenRecords(file: StaticString = #filePath, line: UInt = #line) throws -> [FastCGIRecord] {
        var all = ByteBuffer()
        while let buffer = try self.channel.readOutbound(as: ByteBuffer.self) {
            all.writeImmutableBuffer(buffer)
        }
        return try FastCGITestWire.decodeAll(all)
    }

    /// The outcome of a write EmbeddedChannel already carried out; `nil` when the promise was lost, so that fails instead of hanging.
    private func outcome(_ future: EventLoopFuture<Void>) -> Result<Void, any Error>? {
        var outcome: Result<Void, any Error>?
        future.assumeIsolated().whenComplete { outcome = $0 }
        return outcome
    }

    private func assertSucceeded(_ future: EventLoopFuture<Void>, file: StaticString = #filePath, line: UInt = #line) {
        switch self.outcome(future) {
        case .success:
            break
        case .failure(let error):
            XCTFail("write failed: \(error)", file: file, line: line)
        case nil:
            XCTFail("write promise was never completed", file: file, line: line)
        }
    }

    private func assertFailed(
        _ future: EventLoopFuture<Void>,
        with expected: FastCGIError,
        file: StaticString = #filePath,
        line: UInt = #line
    ) {
        switch self.outcome(future) {
        case .success:
            XCTFail("write succeeded", file: file, line: line)
        case .failure(let error):
            XCTAssertEqual(error as? FastCGIError, expected, file: file, line: line)
        case nil:
            XCTFail("write promise was never completed", file: file, line: line)
        }
    }

    private func endRequestContent(appStatus: UInt32, status: FastCGIProtocolStatus) -> ByteBuffer {
        var content = ByteBuffer()
        content.writeMultipleIntegers(appStatus, status.rawValue, UInt8(0), UInt16(0))
        return content
    }

    // MARK: Inbound

    func testFullRequestBecomesHeadBodiesAndEnd() throws {
        try self.channel.writeInbound(self.fullRequest())
        XCTAssertEqual(self.recorder.parts, self.expectedParts())
        XCTAssertEqual(self.errors, [])
        XCTAssertEqual(try self.writtenRecords(), [])
    }

    func testFullRequestSplitAcrossReadsAtEveryByte() throws {
        let wire = self.fullRequest(id: 0x0102, flags: 1, paramsRecordSize: 3)
        for byte in wire.readableBytesView {
            try self.channel.writeInbound(ByteBuffer(bytes: [byte]))
        }
        // The body is handed on as it arrives, a byte at a time here.
        XCTAssertEqual(self.recorder.parts.count, 2 + "hello world".utf8.count)
        XCTAssertEqual(
            Self.joiningBodies(self.recorder.parts),
            [
                .head(FastCGIRequestHead(requestID: 0x0102, keepConnection: true, parameters: self.parameters)),
                .body(ByteBuffer(string: "hello world")),
                .end,
            ])
        XCTAssertEqual(self.errors, [])
    }

    func testHeadComparesParametersInOrder() {
        let head = FastCGIRequestHead(requestID: 1, keepConnection: false, parameters: [(name: "A", value: "1")])
        var other = head
        XCTAssertEqual(head, other)
        other.parameters = [(name: "A", value: "2")]
        XCTAssertNotEqual(head, other)
        other.parameters = [(name: "A", value: "1"), (name: "A", value: "1")]
        XCTAssertNotEqual(head, other)
        XCTAssertEqual(head.parameter("A"), "1")
        XCTAssertNil(head.parameter("B"))
    }

    func testEmptyParamsStreamGivesEmptyHead() throws {
        try self.channel.writeInbound(
            FastCGITestWire.concatenate([
                FastCGITestWire.begin(id: 7),
                FastCGITestWire.record(.params, id: 7),
                FastCGITestWire.record(.stdin, id: 7),
            ])
        )
        XCTAssertEqual(
            self.recorder.parts,
            [.head(FastCGIRequestHead(requestID: 7, keepConnection: false, parameters: [])), .end]
        )
    }

    func testStdinBeforeBeginIsAnErrorAndLaterInputIsIgnored() throws {
        try self.channel.writeInbound(FastCGITestWire.record(.stdin, id: 1, "early"))
        XCTAssertEqual(self.errors, [.unexpectedRecord])
        XCTAssertEqual(self.recorder.parts, [])

        try self.channel.writeInbound(self.fullRequest())
        XCTAssertEqual(self.recorder.parts, [])
        XCTAssertEqual(self.errors.count, 1)
    }

    func testParamsAfterHeadIsAnError() throws {
        try self.channel.writeInbound(
            FastCGITestWire.concatenate([
                FastCGITestWire.begin(id: 1),
                FastCGITestWire.record(.params, id: 1),
                FastCGITestWire.record(.params, id: 1, "late"),
                FastCGITestWire.record(.stdin, id: 1),
            ])
        )
        XCTAssertEqual(
            self.recorder.parts,
            [.head(FastCGIRequestHead(requestID: 1, keepConnection: false, parameters: []))]
        )
        XCTAssertEqual(self.errors, [.unexpectedRecord])
    }

    func testRecordsAfterStdinEndedAreAnError() throws {
        try self.channel.writeInbound(self.fullRequest())
        try self.channel.writeInbound(FastCGITestWire.record(.stdin, id: 1, "more"))
        XCTAssertEqual(self.recorder.parts, self.expectedParts())
        XCTAssertEqual(self.errors, [.unexpectedRecord])
    }

    func testDataAndUnknownRecordTypesAreErrors() throws {
        for type in [FastCGIRecordType.data, .stdout, FastCGIRecordType(rawValue: 42)] {
            self.makeChannel(FastCGIServerCodec())
            try self.channel.writeInbound(FastCGITestWire.begin(id: 1))
            try self.channel.writeInbound(FastCGITestWire.record(type, id: 1, "x"))
            XCTAssertEqual(self.errors, [.unexpectedRecord], "\(type)")
        }
    }

    func testNonResponderRoleIsRejectedWithUnknownRole() throws {
        for role: UInt16 in [2, 3, 0, 99] {
            self.makeChannel(FastCGIServerCodec())
            try self.channel.writeInbound(FastCGITestWire.begin(id: 0x0304, role: role))
            XCTAssertEqual(self.errors, [.unknownRole], "role \(role)")
            XCTAssertEqual(
                try self.writtenRecords(),
                [
                    FastCGIRecord(
                        type: .endRequest,
                        requestID: 0x0304,
                        content: self.endRequestContent(appStatus: 0, status: .unknownRole)
                    )
                ],
                "role \(role)"
            )
            XCTAssertEqual(self.recorder.parts, [])
        }
    }

    func testMalformedBeginRequestIsAnError() throws {
        try self.channel.writeInbound(FastCGITestWire.record(.beginRequest, id: 1, [0, 1, 0, 0, 0, 0, 0]))
        XCTAssertEqual(self.errors, [.malformedBeginRequest])
    }

    func testRecordForAnotherRequestIsAnError() throws {
        try self.channel.writeInbound(FastCGITestWire.begin(id: 1))
        try self.channel.writeInbound(FastCGITestWire.record(.params, id: 2, "x"))
        XCTAssertEqual(self.errors, [.wrongRequestID])
    }

    func testSecondBeginRequestIsRefusedAsMultiplexing() throws {
        try self.channel.writeInbound(FastCGITestWire.begin(id: 1))
        try self.channel.writeInbound(FastCGITestWire.begin(id: 2))
        XCTAssertEqual(self.errors, [.wrongRequestID])
        XCTAssertEqual(
            try self.writtenRecords(),
            [
                FastCGIRecord(
                    type: .endRequest,
                    requestID: 2,
                    content: self.endRequestContent(appStatus: 0, status: .cantMultiplexConnection)
                )
            ]
        )
    }

    func testParamsLargerThanTheLimitAreAnError() throws {
        self.makeChannel(FastCGIServerCodec(maximumParamsLength: 100))
        try self.channel.writeInbound(FastCGITestWire.begin(id: 1))
        try self.channel.writeInbound(FastCGITestWire.record(.params, id: 1, [UInt8](repeating: 1, count: 60)))
        XCTAssertEqual(self.errors, [])
        try self.channel.writeInbound(FastCGITestWire.record(.params, id: 1, [UInt8](repeating: 1, count: 41)))
        XCTAssertEqual(self.errors, [.paramsTooLarge])
    }

    func testParamsExactlyAtTheLimitAreAccepted() throws {
        var stream = ByteBuffer()
        FastCGINameValuePairs.encode([(name: "A", value: String(repeating: "v", count: 97))], into: &stream)
        XCTAssertEqual(stream.readableBytes, 100)
        self.makeChannel(FastCGIServerCodec(maximumParamsLength: 100))
        try self.channel.writeInbound(FastCGITestWire.begin(id: 1))
        try self.channel.writeInbound(
            FastCGITestWire.params(id: 1, [(name: "A", value: String(repeating: "v", count: 97))], recordSize: 30))
        XCTAssertEqual(self.errors, [])
        XCTAssertEqual(self.recorder.parts.count, 1)
    }

    func testGarbageParamsStreamIsAnError() throws {
        try self.channel.writeInbound(FastCGITestWire.begin(id: 1))
        try self.channel.writeInbound(FastCGITestWire.record(.params, id: 1, [9, 9, 0x41]))
        try self.channel.writeInbound(FastCGITestWire.record(.params, id: 1))
        XCTAssertEqual(self.errors, [.malformedNameValuePair])
        XCTAssertEqual(self.recorder.parts, [])
    }

    func testAbortRequestIsReportedAndTheWorkerCanStillEndTheRequest() throws {
        try self.channel.writeInbound(
            FastCGITestWire.concatenate([
                FastCGITestWire.begin(id: 5),
                FastCGITestWire.params(id: 5, self.parameters, recordSize: 1000),
                FastCGITestWire.record(.stdin, id: 5, "partial"),
                FastCGITestWire.record(.abortRequest, id: 5),
            ])
        )
        XCTAssertEqual(self.errors, [.requestAborted])
        XCTAssertEqual(self.recorder.parts.count, 2)

        try self.channel.writeOutbound(FastCGIResponsePart.end(appStatus: 1))
        XCTAssertEqual(try self.writtenRecords().map(\.type), [.stdout, .endRequest])
    }

    func testVersionErrorIsReported() throws {
        var wire = FastCGITestWire.begin(id: 1)
        wire.setInteger(UInt8(2), at: wire.readerIndex)
        try self.channel.writeInbound(wire)
        XCTAssertEqual(self.errors, [.unsupportedVersion])
    }

    func testPartialRecordAtCloseIsTruncated() throws {
        let wire = FastCGITestWire.concatenate([
            FastCGITestWire.begin(id: 1),
            FastCGITestWire.record(.params, id: 1, "abcdef").getSlice(at: 0, length: 10) ?? ByteBuffer(),
        ])
        try self.channel.writeInbound(wire)
        XCTAssertEqual(self.errors, [])
        self.channel.pipeline.fireChannelInactive()
        XCTAssertEqual(self.errors, [.truncatedRecord])
    }

    func testPartialRecordAtInputCloseIsTruncated() throws {
        try self.channel.writeInbound(FastCGITestWire.begin(id: 1).getSlice(at: 0, length: 3) ?? ByteBuffer())
        self.channel.pipeline.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
        XCTAssertEqual(self.errors, [.truncatedRecord])
        self.channel.pipeline.fireChannelInactive()
        XCTAssertEqual(self.errors.count, 1)
    }

    func testCloseBetweenRecordsIsClean() throws {
        try self.channel.writeInbound(FastCGITestWire.begin(id: 1))
        self.channel.pipeline.fireChannelInactive()
        XCTAssertEqual(self.errors, [])
    }

    func testRandomGarbageNeverCrashesTheCodec() throws {
        var generator = FastCGISeededGenerator(seed: 0xC0DEC)
        var errorCount = 0
        for round in 0..<1000 {
            self.makeChannel(FastCGIServerCodec(maximumParamsLength: 256))
            var input: ByteBuffer
            if round % 2 == 0 {
                // Well-formed records with random types, ids and contents reach the state machine.
                input = ByteBuffer()
                for _ in 0..<Int.random(in: 1...8, using: &generator) {
                    let type = FastCGIRecordType(rawValue: UInt8.random(in: 0...12, using: &generator))
                    let content = FastCGITestWire.randomBytes(
                        Int.random(in: 0...40, using: &generator), using: &generator)
                    input.writeImmutableBuffer(
                        FastCGITestWire.record(type, id: UInt16.random(in: 0...2, using: &generator), content)
                    )
                }
            } else {
                input = ByteBuffer(
                    bytes: FastCGITestWire.randomBytes(Int.random(in: 0...200, using: &generator), using: &generator))
            }
            while input.readableBytes > 0 {
                let length = min(input.readableBytes, Int.random(in: 1...50, using: &generator))
                try self.channel.writeInbound(input.readSlice(length: length) ?? ByteBuffer())
            }
            self.channel.pipeline.fireChannelInactive()
            XCTAssertLessThanOrEqual(self.recorder.errors.count, 1)
            XCTAssertTrue(self.recorder.errors.allSatisfy { $0 is FastCGIError }, "\(self.recorder.errors)")
            errorCount += self.recorder.errors.count
            while try self.channel.readOutbound(as: ByteBuffer.self) != nil {}
        }
        XCTAssertGreaterThan(errorCount, 0)
    }

    // MARK: Management records

    func testGetValuesIsAnswered() throws {
        self.makeChannel(FastCGIServerCodec(maximumConnections: 4))
        var query = ByteBuffer()
        FastCGINameValuePairs.encode(
            [
                (name: "FCGI_MAX_CONNS", value: ""), (name: "FCGI_MAX_REQS", value: ""),
                (name: "FCGI_MPXS_CONNS", value: ""), (name: "SOMETHING_ELSE", value: ""),
            ],
            into: &query
        )
        try self.channel.writeInbound(FastCGITestWire.record(.getValues, id: 0, Array(query.readableBytesView)))
        let records = try self.writtenRecords()
        XCTAssertEqual(records.map(\.type), [.getValuesResult])
        XCTAssertEqual(records.map(\.requestID), [0])
        let answer = try FastCGINameValuePairs.decode(records.first?.content ?? ByteBuffer())
        XCTAssertEqual(answer.map(\.name), ["FCGI_MAX_CONNS", "FCGI_MAX_REQS", "FCGI_MPXS_CONNS"])
        XCTAssertEqual(answer.map(\.value), ["4", "4", "0"])
        XCTAssertEqual(self.errors, [])
        XCTAssertEqual(self.recorder.parts, [])
    }

    func testGetValuesInTheMiddleOfARequestDoesNotDisturbIt() throws {
        try self.channel.writeInbound(
            FastCGITestWire.concatenate([
                FastCGITestWire.begin(id: 1),
                FastCGITestWire.record(.getValues, id: 0),
                FastCGITestWire.params(id: 1, self.parameters, recordSize: 50),
                FastCGITestWire.record(.params, id: 0),
                FastCGITestWire.record(.stdin, id: 1, "hello "),
                FastCGITestWire.record(.stdin, id: 1, "world"),
                FastCGITestWire.record(.stdin, id: 1),
            ])
        )
        XCTAssertEqual(self.recorder.parts, self.expectedParts())
        XCTAssertEqual(self.errors, [])
        XCTAssertEqual(try self.writtenRecords().map(\.type), [.getValuesResult, .unknownType])
    }

    func testUnknownManagementTypeIsAnsweredWithUnknownType() throws {
        for type in [FastCGIRecordType(rawValue: 42), .beginRequest, .getValuesResult] {
            self.makeChannel(FastCGIServerCodec())
            try self.channel.writeInbound(FastCGITestWire.record(type, id: 0, "whatever"))
            XCTAssertEqual(
                try self.writtenRecords(),
                [
                    FastCGIRecord(
                        type: .unknownType,
                        requestID: 0,
                        content: ByteBuffer(bytes: [type.rawValue, 0, 0, 0, 0, 0, 0, 0])
                    )
                ],
                "\(type)"
            )
            XCTAssertEqual(self.errors, [], "\(type)")
        }
    }

    // MARK: Outbound

    func testLargeStdoutIsSplitIntoRecordsWithoutCopying() throws {
        try self.channel.writeInbound(self.fullRequest(id: 9))
        var generator = FastCGISeededGenerator(seed: 200_000)
        let payload = ByteBuffer(bytes: FastCGITestWire.randomBytes(200_000, using: &generator))

        let written = self.channel.writeAndFlush(FastCGIResponsePart.stdout(payload))
        self.assertSucceeded(written)

        var buffers: [ByteBuffer] = []
        while let buffer = try self.channel.readOutbound(as: ByteBuffer.self) {
            buffers.append(buffer)
        }
        // Header and payload slice per record; the slices share the payload's storage.
        XCTAssertEqual(buffers.map(\.readableBytes), [8, 65535, 8, 65535, 8, 65535, 8, 3395])
        let payloadBase = payload.withVeryUnsafeBytes { UInt(bitPattern: $0.baseAddress) }
        for (index, slice) in stride(from: 1, to: buffers.count, by: 2).enumerated() {
            XCTAssertEqual(
                buffers[slice].withVeryUnsafeBytes { UInt(bitPattern: $0.baseAddress) },
                payloadBase + UInt(index * FastCGIRecord.maximumContentLength)
            )
        }

        let records = try FastCGITestWire.decodeAll(FastCGITestWire.concatenate(buffers))
        XCTAssertTrue(records.allSatisfy { $0.type == .stdout && $0.requestID == 9 })
        XCTAssertTrue(records.allSatisfy { $0.content.readableBytes <= FastCGIRecord.maximumContentLength })
        XCTAssertEqual(FastCGITestWire.concatenate(records.map(\.content)), payload)
    }

    func testSmallStdoutLeavesAsOneBuffer() throws {
        try self.channel.writeInbound(self.fullRequest(id: 9))
        try self.channel.writeOutbound(FastCGIResponsePart.stdout(ByteBuffer(string: "Status: 200 OK\r\n\r\n")))
        let buffer = try self.channel.readOutbound(as: ByteBuffer.self)
        XCTAssertNil(try self.channel.readOutbound(as: ByteBuffer.self))
        XCTAssertEqual(
            try FastCGITestWire.decodeAll(buffer ?? ByteBuffer()),
            [FastCGIRecord(type: .stdout, requestID: 9, content: ByteBuffer(string: "Status: 200 OK\r\n\r\n"))]
        )
    }

    func testStdoutOfExactlyOneRecordAndOneMore() throws {
        try self.channel.writeInbound(self.fullRequest())
        for size in [511, 512, 65_535, 65_536] {
            let payload = ByteBuffer(repeating: 7, count: size)
            try self.channel.writeOutbound(FastCGIResponsePart.stdout(payload))
            let records = try self.writtenRecords()
            XCTAssertEqual(
                records.map(\.content.readableBytes),
                size > 65_535 ? [65_535, size - 65_535] : [size],
                "size \(size)"
            )
            XCTAssertEqual(FastCGITestWire.concatenate(records.map(\.content)), payload)
        }
    }

    func testStderrBecomesStderrRecords() throws {
        try self.channel.writeInbound(self.fullRequest(id: 2))
        try self.channel.writeOutbound(FastCGIResponsePart.stderr(ByteBuffer(string: "log line\n")))
        XCTAssertEqual(
            try self.writtenRecords(),
            [FastCGIRecord(type: .stderr, requestID: 2, content: ByteBuffer(string: "log line\n"))]
        )
    }

    func testEmptyStreamWritesNothingAndSucceeds() throws {
        try self.channel.writeInbound(self.fullRequest())
        let stdout = self.channel.writeAndFlush(FastCGIResponsePart.stdout(ByteBuffer()))
        let stderr = self.channel.writeAndFlush(FastCGIResponsePart.stderr(ByteBuffer()))
        self.assertSucceeded(stdout)
        self.assertSucceeded(stderr)
        XCTAssertNil(try self.channel.readOutbound(as: ByteBuffer.self))
    }

    func testEndWritesEmptyStdoutAndEndRequestInOneBuffer() throws {
        try self.channel.writeInbound(self.fullRequest(id: 0x0102))
        let written = self.channel.writeAndFlush(FastCGIResponsePart.end(appStatus: 0x0A0B_0C0D))
        self.assertSucceeded(written)
        let buffer = try self.channel.readOutbound(as: ByteBuffer.self)
        XCTAssertNil(try self.channel.readOutbound(as: ByteBuffer.self))
        XCTAssertEqual(
            Array((buffer ?? ByteBuffer()).readableBytesView),
            [
                1, 6, 1, 2, 0, 0, 0, 0, // empty STDOUT
                1, 3, 1, 2, 0, 8, 0, 0, // END_REQUEST header
                0x0A, 0x0B, 0x0C, 0x0D, 0, 0, 0, 0, // appStatus, requestComplete, reserved
            ]
        )
    }

    func testShortLastStdoutAndEndLeaveAsOneBuffer() throws {
        try self.channel.writeInbound(self.fullRequest(id: 3))
        let written = self.channel.writeAndFlush(
            FastCGIResponsePart.stdoutThenEnd(ByteBuffer(string: "Status: 200 OK\r\n\r\nhi"), keepsConnection: true)
        )
        self.assertSucceeded(written)
        let buffer = try XCTUnwrap(try self.channel.readOutbound(as: ByteBuffer.self))
        XCTAssertNil(try self.channel.readOutbound(as: ByteBuffer.self))
        XCTAssertEqual(
            try FastCGITestWire.decodeAll(buffer),
            [
                FastCGIRecord(type: .stdout, requestID: 3, content: ByteBuffer(string: "Status: 200 OK\r\n\r\nhi")),
                FastCGIRecord(type: .stdout, requestID: 3, content: ByteBuffer()),
                FastCGIRecord(
                    type: .endRequest, requestID: 3,
                    content: self.endRequestContent(
                        appStatus: FastCGIServerCodec.keptConnectionAppStatus, status: .requestComplete)),
            ]
        )
    }

    func testLongLastStdoutIsSplitIntoRecordsBeforeTheEnd() throws {
        try self.channel.writeInbound(self.fullRequest(id: 3))
        let body = ByteBuffer(repeating: 0x61, count: 70_000)
        try self.channel.writeOutbound(FastCGIResponsePart.stdoutThenEnd(body, keepsConnection: false))
        let records = try self.writtenRecords()
        XCTAssertEqual(records.map(\.type), [.stdout, .stdout, .stdout, .endRequest])
        XCTAssertEqual(records.map(\.content.readableBytes), [65535, 70_000 - 65535, 0, 8])
        var joined = records[0].content
        var rest = records[1].content
        joined.writeBuffer(&rest)
        XCTAssertEqual(joined, body)
    }

    func testEmptyLastStdoutWritesJustTheEnd() throws {
        try self.channel.writeInbound(self.fullRequest(id: 3))
        try self.channel.writeOutbound(FastCGIResponsePart.stdoutThenEnd(ByteBuffer(), keepsConnection: false))
        XCTAssertEqual(try self.writtenRecords().map(\.type), [.stdout, .endRequest])
    }

    func testWritingWithoutARequestFails() throws {
        let early = self.channel.writeAndFlush(FastCGIResponsePart.stdout(ByteBuffer(string: "x")))
        self.assertFailed(early, with: .noActiveRequest)

        try self.channel.writeInbound(self.fullRequest())
        try self.channel.writeOutbound(FastCGIResponsePart.end(appStatus: 0))
        let late = self.channel.writeAndFlush(FastCGIResponsePart.stdout(ByteBuffer(string: "x")))
        self.assertFailed(late, with: .noActiveRequest)
        let lateEnd = self.channel.writeAndFlush(FastCGIResponsePart.end(appStatus: 0))
        self.assertFailed(lateEnd, with: .noActiveRequest)
    }

    func testOverloadedNeedsNoOpenRequestAndLeavesTheConnectionUsable() throws {
        let refused = self.channel.writeAndFlush(FastCGIResponsePart.overloaded(requestID: 7))
        self.assertSucceeded(refused)
        let records = try self.writtenRecords()
        XCTAssertEqual(records.map(\.type), [.endRequest])
        XCTAssertEqual(records.first?.requestID, 7)
        XCTAssertEqual(records.first?.content, self.endRequestContent(appStatus: 0, status: .overloaded))

        try self.channel.writeInbound(self.fullRequest())
        XCTAssertEqual(self.recorder.parts, self.expectedParts())
    }

    func testCompleteExchange() throws {
        try self.channel.writeInbound(self.fullRequest(id: 1))
        try self.channel.writeOutbound(FastCGIResponsePart.stdout(ByteBuffer(string: "Status: 200 OK\r\n\r\nhi")))
        try self.channel.writeOutbound(FastCGIResponsePart.stderr(ByteBuffer(string: "served")))
        try self.channel.writeOutbound(FastCGIResponsePart.end(appStatus: 0))
        XCTAssertEqual(
            try self.writtenRecords(),
            [
                FastCGIRecord(type: .stdout, requestID: 1, content: ByteBuffer(string: "Status: 200 OK\r\n\r\nhi")),
                FastCGIRecord(type: .stderr, requestID: 1, content: ByteBuffer(string: "served")),
                FastCGIRecord(type: .stdout, requestID: 1, content: ByteBuffer()),
                FastCGIRecord(
                    type: .endRequest,
                    requestID: 1,
                    content: self.endRequestContent(appStatus: 0, status: .requestComplete)
                ),
            ]
        )
    }

    // MARK: Connection reuse and early responses

    func testKeepConnectionAllowsTheNextRequestAfterTheResponse() throws {
        try self.channel.writeInbound(self.fullRequest(id: 1, flags: 1))
        try self.channel.writeOutbound(FastCGIResponsePart.end(appStatus: 0))
        try self.channel.writeInbound(self.fullRequest(id: 2, flags: 1))
        XCTAssertEqual(
            self.recorder.parts,
            self.expectedParts(id: 1, keepConnection: true) + self.expectedParts(id: 2, keepConnection: true)
        )
        XCTAssertEqual(self.errors, [])
    }

    func testWithoutKeepConnectionASecondRequestIsAnError() throws {
        try self.channel.writeInbound(self.fullRequest(id: 1))
        try self.channel.writeOutbound(FastCGIResponsePart.end(appStatus: 0))
        try self.channel.writeInbound(FastCGITestWire.record(.abortRequest, id: 1)) // a late abort is harmless
        XCTAssertEqual(self.errors, [])
        try self.channel.writeInbound(FastCGITestWire.begin(id: 2))
        XCTAssertEqual(self.errors, [.unexpectedRecord])
    }

    /// The rest of the body is dropped, but its end is still reported: the server may close then.
    func testInputAfterAnEarlyResponseIsDroppedButItsEndIsReported() throws {
        try self.channel.writeInbound(
            FastCGITestWire.concatenate([
                FastCGITestWire.begin(id: 1, flags: 1),
                FastCGITestWire.params(id: 1, self.parameters, recordSize: 100),
                FastCGITestWire.record(.stdin, id: 1, "upload part 1"),
            ])
        )
        try self.channel.writeOutbound(FastCGIResponsePart.end(appStatus: 0))
        try self.channel.writeInbound(
            FastCGITestWire.concatenate([
                FastCGITestWire.record(.stdin, id: 1, "upload part 2"),
                FastCGITestWire.record(.stdin, id: 1),
                self.fullRequest(id: 2, flags: 1),
            ])
        )
        XCTAssertEqual(self.errors, [])
        XCTAssertEqual(
            self.recorder.parts,
            Array(self.expectedParts(id: 1, keepConnection: true).prefix(1)) + [
                .body(ByteBuffer(string: "upload part 1")), .end,
            ]
                + self.expectedParts(id: 2, keepConnection: true)
        )
    }

    func testWorkerRespondingAndClosingFromInsideChannelReadIsSafe() throws {
        self.recorder.onPart = { part, context in
            guard case .end = part else {
                return
            }
            context.write(NIOAny(FastCGIResponsePart.stdout(ByteBuffer(string: "Status: 204\r\n\r\n"))), promise: nil)
            context.writeAndFlush(NIOAny(FastCGIResponsePart.end(appStatus: 0)), promise: nil)
            context.close(promise: nil)
        }
        var wire = self.fullRequest()
        // A partial record after the request: closing must not decode it re-entrantly.
        wire.writeImmutableBuffer(
            FastCGITestWire.record(.stdin, id: 1, "tail").getSlice(at: 0, length: 5) ?? ByteBuffer())
        try self.channel.writeInbound(wire)
        XCTAssertEqual(self.recorder.parts, self.expectedParts())
        XCTAssertEqual(try self.writtenRecords().map(\.type), [.stdout, .stdout, .endRequest])
        XCTAssertEqual(self.errors, [.truncatedRecord])
    }

    /// NIOAny keeps values of up to three words inline; a larger part is boxed (an allocation
    /// and reference counts) on every pass through the pipeline.
    func testRequestAndResponsePartsFitNIOAnyInlineStorage() {
        XCTAssertLessThanOrEqual(MemoryLayout<FastCGIRequestPart>.size, 3 * MemoryLayout<Int>.size)
        XCTAssertLessThanOrEqual(MemoryLayout<FastCGIResponsePart>.size, 3 * MemoryLayout<Int>.size)
    }
}
