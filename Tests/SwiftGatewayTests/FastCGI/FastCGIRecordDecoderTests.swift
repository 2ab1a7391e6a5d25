import NIOCore
import NIOEmbedded
import XCTest

@testable import SwiftGateway

/// A deterministic generator (SplitMix64) so random tests fail the same way every time.
struct FastCGISeededGenerator: RandomNumberGenerator {
    private var state: UInt64

    init(seed: UInt64) {
        self.state = seed
    }

    mutating func next() -> UInt64 {
        self.state &+= 0x9E37_79B9_7F4A_7C15
        var z = self.state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Builds wire bytes for the FastCGI tests.
enum FastCGITestWire {
    static func record(
        _ type: FastCGIRecordType,
        id: UInt16 = 1,
        _ content: [UInt8] = [],
        padding: Int = 0
    ) -> ByteBuffer {
        var buffer = ByteBuffer()
        buffer.writeFastCGIRecordHeader(type: type, requestID: id, contentLength: content.count, paddingLength: padding)
        buffer.writeBytes(content)
        buffer.writeRepeatingByte(0xEE, count: padding)
        return buffer
    }

    static func record(_ type: FastCGIRecordType, id: UInt16 = 1, _ content: String) -> ByteBuffer {
        self.record(type, id: id, Array(content.utf8))
    }

    static func begin(id: UInt16 = 1, role: UInt16 = 1, flags: UInt8 = 0) -> ByteBuffer {
        var content = ByteBuffer()
        content.writeMultipleIntegers(role, flags, UInt8(0), UInt32(0))
        return self.record(.beginRequest, id: id, Array(content.readableBytesView))
    }

    /// The pairs encoded, cut into PARAMS records of `recordSize` bytes, followed by the empty PARAMS record.
    static func params(id: UInt16 = 1, _ pairs: [(name: String, value: String)], recordSize: Int) -> ByteBuffer {
        var stream = ByteBuffer()
        FastCGINameValuePairs.encode(pairs, into: &stream)
        var buffer = ByteBuffer()
        while let chunk = stream.readBytes(length: min(recordSize, stream.readableBytes)), !chunk.isEmpty {
            buffer.writeImmutableBuffer(self.record(.params, id: id, chunk))
        }
        buffer.writeImmutableBuffer(self.record(.params, id: id))
        return buffer
    }

    static func concatenate(_ buffers: [ByteBuffer]) -> ByteBuffer {
        var all = ByteBuffer()
        for buffer in buffers {
            all.writeImmutableBuffer(buffer)
        }
        return all
    }

    /// Decodes complete records and insists nothing is left over.
    static func decodeAll(_ buffer: ByteBuffer) throws -> [FastCGIRecord] {
        let processor = NIOSingleStepByteToMessageProcessor(FastCGIRecordDecoder())
        var records: [FastCGIRecord] = []
        try processor.process(buffer: buffer) { records.append($0) }
        try processor.finishProcessing(seenEOF: true) { records.append($0) }
        return records
    }

    static func randomBytes(_ count: Int, using generator: inout FastCGISeededGenerator) -> [UInt8] {
        (0..<count).map { _ in UInt8.random(in: 0...255, using: &generator) }
    }
}

final class FastCGIRecordDecoderTests: XCTestCase {
    private func decode(_ input: ByteBuffer) throws -> [FastCGIRecord] {
        try FastCGITestWire.decodeAll(input)
    }

    func testHeaderWriterLaysOutTheSpecHeader() {
        var buffer = ByteBuffer()
        let written = buffer.writeFastCGIRecordHeader(
            type: .stdout,
            requestID: 0x1234,
            contentLength: 0xFFFF,
            paddingLength: 7
        )
        XCTAssertEqual(written, 8)
        XCTAssertEqual(Array(buffer.readableBytesView), [1, 6, 0x12, 0x34, 0xFF, 0xFF, 7, 0])
    }

    func testEveryRecordTypeRoundTrips() throws {
        let types: [FastCGIRecordType] = [
            .beginRequest, .abortRequest, .endRequest, .params, .stdin, .stdout, .stderr, .data, .getValues,
            .getValuesResult, .unknownType, FastCGIRecordType(rawValue: 0), FastCGIRecordType(rawValue: 200),
        ]
        XCTAssertEqual(types.prefix(11).map(\.rawValue), Array(1...11))
        for (index, type) in types.enumerated() {
            let content = ByteBuffer(string: "content of \(type)")
            let record = FastCGIRecord(type: type, requestID: UInt16(index * 257), content: content)
            var wire = ByteBuffer()
            try wire.writeFastCGIRecord(record)
            XCTAssertEqual(try self.decode(wire), [record], "\(type)")
        }
    }

    func testContentLengthBoundaries() throws {
        for length in [0, 1, 7, 8, 9, FastCGIRecord.maximumContentLength - 1, FastCGIRecord.maximumContentLength] {
            let content = ByteBuffer(repeating: UInt8(truncatingIfNeeded: length), count: length)
            let record = FastCGIRecord(type: .stdin, requestID: 1, content: content)
            var wire = ByteBuffer()
            try wire.writeFastCGIRecord(record)
            XCTAssertEqual(wire.readableBytes, 8 + length)
            XCTAssertEqual(try self.decode(wire), [record], "length \(length)")
        }
    }

    func testWholeRecordWriterRefusesOversizedContent() {
        let record = FastCGIRecord(
            type: .stdout,
            requestID: 1,
            content: ByteBuffer(repeating: 0, count: FastCGIRecord.maximumContentLength + 1)
        )
        var wire = ByteBuffer()
        XCTAssertThrowsError(try wire.writeFastCGIRecord(record)) { error in
            XCTAssertEqual(error as? FastCGIError, .contentTooLong)
        }
        XCTAssertEqual(wire.readableBytes, 0)
    }

    func testPaddingIsSkipped() throws {
        for padding in 0...255 {
            let content = Array("padded \(padding)".utf8)
            let wire = FastCGITestWire.concatenate([
                FastCGITestWire.record(.stdout, id: 3, content, padding: padding),
                FastCGITestWire.record(.stderr, id: 3, [42], padding: 255 - padding),
            ])
            let records = try self.decode(wire)
            XCTAssertEqual(
                records,
                [
                    FastCGIRecord(type: .stdout, requestID: 3, content: ByteBuffer(bytes: content)),
                    FastCGIRecord(type: .stderr, requestID: 3, content: ByteBuffer(bytes: [42])),
                ],
                "padding \(padding)"
            )
        }
    }

    func testRecordsFedOneByteAtATimeDecode() throws {
        let expected = [
            FastCGIRecord(type: .beginRequest, requestID: 1, content: ByteBuffer(bytes: [0, 1, 1, 0, 0, 0, 0, 0])),
            FastCGIRecord(type: .params, requestID: 1, content: ByteBuffer(string: "abc")),
            FastCGIRecord(type: .params, requestID: 1, content: ByteBuffer()),
            FastCGIRecord(type: .stdin, requestID: 1, content: ByteBuffer(repeating: 9, count: 300)),
        ]
        var wire = ByteBuffer()
        for (index, record) in expected.enumerated() {
            wire.writeFastCGIRecordHeader(
                type: record.type,
                requestID: record.requestID,
                contentLength: record.content.readableBytes,
                paddingLength: index * 3
            )
            wire.writeImmutableBuffer(record.content)
            wire.writeRepeatingByte(0, count: index * 3)
        }

        let processor = NIOSingleStepByteToMessageProcessor(FastCGIRecordDecoder())
        var records: [FastCGIRecord] = []
        for byte in wire.readableBytesView {
            try processor.process(buffer: ByteBuffer(bytes: [byte])) { records.append($0) }
        }
        try processor.finishProcessing(seenEOF: true) { records.append($0) }
        XCTAssertEqual(records, expected)
    }

    func testRecordsSplitAtRandomBoundariesDecode() throws {
        var generator = FastCGISeededGenerator(seed: 0xFC61)
        var expected: [FastCGIRecord] = []
        var wire = ByteBuffer()
        for index in 0..<40 {
            let content = FastCGITestWire.randomBytes(Int.random(in: 0...2000, using: &generator), using: &generator)
            let padding = Int.random(in: 0...255, using: &generator)
            let record = FastCGIRecord(type: .stdin, requestID: UInt16(index), content: ByteBuffer(bytes: content))
            expected.append(record)
            wire.writeImmutableBuffer(FastCGITestWire.record(.stdin, id: UInt16(index), content, padding: padding))
        }
        for _ in 0..<20 {
            var input = wire
            let processor = NIOSingleStepByteToMessageProcessor(FastCGIRecordDecoder())
            var records: [FastCGIRecord] = []
            while input.readableBytes > 0 {
                let length = min(input.readableBytes, Int.random(in: 1...700, using: &generator))
                guard let piece = input.readSlice(length: length) else {
                    return XCTFail("slice")
                }
                try processor.process(buffer: piece) { records.append($0) }
            }
            try processor.finishProcessing(seenEOF: true) { records.append($0) }
            XCTAssertEqual(records, expected)
        }
    }

    func testTruncatedInputWaitsForMoreAndFailsAtEOF() throws {
        let whole = FastCGITestWire.record(.stdin, id: 1, Array("hello world".utf8), padding: 5)
        let cases: [(String, Int)] = [
            ("first byte only", 1),
            ("partial header", 5),
            ("header only", 8),
            ("partial content", 12),
            ("content without padding", 19),
            ("partial padding", 22),
        ]
        for (name, length) in cases {
            let processor = NIOSingleStepByteToMessageProcessor(FastCGIRecordDecoder())
            var records: [FastCGIRecord] = []
            try processor.process(buffer: whole.getSlice(at: whole.readerIndex, length: length) ?? ByteBuffer()) {
                records.append($0)
            }
            XCTAssertEqual(records, [], name)
            XCTAssertEqual(processor.unprocessedBytes, length, name)
            XCTAssertThrowsError(try processor.finishProcessing(seenEOF: true) { records.append($0) }, name) { error in
                XCTAssertEqual(error as? FastCGIError, .truncatedRecord, name)
            }
            XCTAssertEqual(records, [], name)
        }
    }

    func testTruncatedInputInAPipelineFailsWhenTheChannelCloses() throws {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(FastCGIRecordDecoder()))
        var whole = FastCGITestWire.record(.stdout, id: 1, Array("complete".utf8))
        whole.writeImmutableBuffer(FastCGITestWire.record(.stdin, id: 1, Array("hello".utf8)).getSlice(at: 0, length: 10)!)
        try channel.writeInbound(whole)
        XCTAssertEqual(
            try channel.readInbound(as: FastCGIRecord.self),
            FastCGIRecord(type: .stdout, requestID: 1, content: ByteBuffer(string: "complete"))
        )
        XCTAssertNil(try channel.readInbound(as: FastCGIRecord.self))
        XCTAssertThrowsError(try channel.finish()) { error in
            XCTAssertEqual(error as? FastCGIError, .truncatedRecord)
        }
    }

    func testCleanEndOfInputIsNotAnError() throws {
        let processor = NIOSingleStepByteToMessageProcessor(FastCGIRecordDecoder())
        var records: [FastCGIRecord] = []
        try processor.process(buffer: FastCGITestWire.record(.stdin, id: 1)) { records.append($0) }
        try processor.finishProcessing(seenEOF: true) { records.append($0) }
        XCTAssertEqual(records, [FastCGIRecord(type: .stdin, requestID: 1, content: ByteBuffer())])
    }

    func testVersionOtherThanOneIsRejectedAtTheFirstByte() {
        for version: UInt8 in [0, 2, 3, 0x7F, 0xFF] {
            var wire = FastCGITestWire.record(.stdin, id: 1, Array("x".utf8))
            wire.setInteger(version, at: wire.readerIndex)
            for length in [1, wire.readableBytes] {
                let processor = NIOSingleStepByteToMessageProcessor(FastCGIRecordDecoder())
                XCTAssertThrowsError(
                    try processor.process(buffer: wire.getSlice(at: wire.readerIndex, length: length)!) { _ in
                        XCTFail("decoded a record of version \(version)")
                    }
                ) { error in
                    XCTAssertEqual(error as? FastCGIError, .unsupportedVersion)
                    XCTAssertTrue("\(error)".contains("version \(version)"), "\(error)")
                }
            }
        }
    }

    func testRandomGarbageNeverCrashes() {
        var generator = FastCGISeededGenerator(seed: 0x5EED)
        var outcomes = (records: 0, errors: 0, waiting: 0)
        for round in 0..<1000 {
            var bytes = FastCGITestWire.randomBytes(Int.random(in: 0...400, using: &generator), using: &generator)
            if round % 2 == 0, !bytes.isEmpty {
                bytes[0] = 1  // get past the version check to exercise the length paths
                if bytes.count > 5 {
                    bytes[4] = 0  // keep content lengths small enough to complete sometimes
                }
            }
            var input = ByteBuffer(bytes: bytes)
            let processor = NIOSingleStepByteToMessageProcessor(FastCGIRecordDecoder())
            do {
                while input.readableBytes > 0 {
                    let length = min(input.readableBytes, Int.random(in: 1...64, using: &generator))
                    try processor.process(buffer: input.readSlice(length: length) ?? ByteBuffer()) { record in
                        XCTAssertLessThanOrEqual(record.content.readableBytes, FastCGIRecord.maximumContentLength)
                        outcomes.records += 1
                    }
                }
                try processor.finishProcessing(seenEOF: true) { _ in outcomes.records += 1 }
                outcomes.waiting += 1
            } catch let error as FastCGIError {
                XCTAssertTrue([.unsupportedVersion, .truncatedRecord].contains(error), "\(error)")
                outcomes.errors += 1
            } catch {
                XCTFail("unexpected error type: \(error)")
            }
        }
        // The corpus must reach every path, or the test proves little.
        XCTAssertGreaterThan(outcomes.records, 0)
        XCTAssertGreaterThan(outcomes.errors, 0)
        XCTAssertGreaterThan(outcomes.waiting, 0)
    }

    func testErrorsCompareByKindAndDescribeThemselves() {
        let withDetail = FastCGIError.unexpectedRecord.withDetail("STDIN for request 1 before BEGIN_REQUEST")
        XCTAssertEqual(withDetail, .unexpectedRecord)
        XCTAssertNotEqual(withDetail, .wrongRequestID)
        XCTAssertEqual(Set([withDetail, .unexpectedRecord]).count, 1)
        XCTAssertEqual(withDetail.detail, "STDIN for request 1 before BEGIN_REQUEST")
        XCTAssertEqual(
            withDetail.description,
            "The FastCGI peer sent a record that is not allowed at this point of the request: STDIN for request 1 before BEGIN_REQUEST."
        )
        XCTAssertEqual(
            FastCGIError.truncatedRecord.description,
            "The FastCGI connection ended in the middle of a record."
        )
    }

    func testRecordTypesDescribeThemselvesWithSpecNames() {
        XCTAssertEqual(FastCGIRecordType.beginRequest.description, "BEGIN_REQUEST")
        XCTAssertEqual(FastCGIRecordType.getValuesResult.description, "GET_VALUES_RESULT")
        XCTAssertEqual(FastCGIRecordType(rawValue: 99).description, "type 99")
    }
}
