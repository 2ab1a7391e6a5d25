import NIOCore
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

    /// The pairs as a name-value stream (the content of PARAMS records).
    static func pairs(_ pairs: [(name: String, value: String)]) -> ByteBuffer {
        var stream = ByteBuffer()
        FastCGINameValuePairs.encode(pairs, into: &stream)
        return stream
    }

    /// The pairs encoded, cut into PARAMS records of `recordSize` bytes, followed by the empty PARAMS record.
    static func params(id: UInt16 = 1, _ pairs: [(name: String, value: String)], recordSize: Int) -> ByteBuffer {
        var stream = self.pairs(pairs)
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
        try self.decodeAll(pieces: [buffer])
    }

    /// Decodes the inputs in turn, then insists nothing is left over.
    static func decodeAll(pieces: [ByteBuffer]) throws -> [FastCGIRecord] {
        var decoder = FastCGIRecordDecoder()
        var records: [FastCGIRecord] = []
        for piece in pieces {
            try decoder.decode(piece) { records.append($0) }
        }
        try decoder.finish()
        return records
    }

    /// Consecutive non-empty `stdin` pieces of one request joined into one record, as they were
    /// sent (two such records in a row would be joined too: the tests that use this send none).
    static func joiningStdin(_ records: [FastCGIRecord]) -> [FastCGIRecord] {
        var joined: [FastCGIRecord] = []
        for record in records {
            if record.type == .stdin, record.content.readableBytes > 0, let last = joined.last,
                last.type == .stdin, last.requestID == record.requestID, last.content.readableBytes > 0
            {
                joined[joined.count - 1].content.writeImmutableBuffer(record.content)
            } else {
                joined.append(record)
            }
        }
        return joined
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

        let records = try FastCGITestWire.decodeAll(pieces: wire.readableBytesView.map { ByteBuffer(bytes: [$0]) })
        XCTAssertEqual(records.count, 3 + 300, "the STDIN content comes out a byte at a time, as it came in")
        XCTAssertEqual(FastCGITestWire.joiningStdin(records), expected)
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
            var pieces: [ByteBuffer] = []
            while input.readableBytes > 0 {
                let length = min(input.readableBytes, Int.random(in: 1...700, using: &generator))
                guard let piece = input.readSlice(length: length) else {
                    return XCTFail("slice")
                }
                pieces.append(piece)
            }
            let records = try FastCGITestWire.decodeAll(pieces: pieces)
            XCTAssertFalse(records.contains { $0.type == .stdin && $0.content.readableBytes > 700 })
            XCTAssertEqual(FastCGITestWire.joiningStdin(records), expected)
        }
    }

    func testTruncatedInputWaitsForMoreAndFailsAtEOF() throws {
        let whole = FastCGITestWire.record(.stdin, id: 1, Array("hello world".utf8), padding: 5)
        let cases: [(name: String, length: Int, content: String)] = [
            ("first byte only", 1, ""),
            ("partial header", 5, ""),
            ("header only", 8, ""),
            ("partial content", 12, "hell"),
            ("content without padding", 19, "hello world"),
            ("partial padding", 22, "hello world"),
        ]
        for (name, length, content) in cases {
            var decoder = FastCGIRecordDecoder()
            var records: [FastCGIRecord] = []
            try decoder.decode(whole.getSlice(at: whole.readerIndex, length: length) ?? ByteBuffer()) {
                records.append($0)
            }
            let expected =
                content.isEmpty ? [] : [FastCGIRecord(type: .stdin, requestID: 1, content: ByteBuffer(string: content))]
            XCTAssertEqual(records, expected, "STDIN content is handed on as it arrives: \(name)")
            XCTAssertTrue(decoder.isInsideRecord, name)
            XCTAssertThrowsError(try decoder.finish(), name) { error in
                XCTAssertEqual(error as? FastCGIError, .truncatedRecord, name)
            }
        }
    }

    func testOtherRecordsWaitUntilWholeAndTruncatedOnesNeverComeOut() throws {
        let whole = FastCGITestWire.record(.params, id: 1, Array("hello world".utf8), padding: 5)
        for length in 1..<whole.readableBytes {
            var decoder = FastCGIRecordDecoder()
            try decoder.decode(whole.getSlice(at: whole.readerIndex, length: length) ?? ByteBuffer()) { record in
                XCTFail("a PARAMS record came out of \(length) of its \(whole.readableBytes) bytes: \(record)")
            }
            XCTAssertThrowsError(try decoder.finish()) { error in
                XCTAssertEqual(error as? FastCGIError, .truncatedRecord)
                XCTAssertTrue("\(error)".contains(length < 8 ? "record header" : "PARAMS for request 1"), "\(error)")
            }
        }
    }

    func testStdinContentIsASliceOfTheInputNotACopy() throws {
        let content = ByteBuffer(repeating: 7, count: 50_000)
        var wire = ByteBuffer()
        try wire.writeFastCGIRecord(FastCGIRecord(type: .stdin, requestID: 1, content: content))
        // Reads that end inside the record: each piece must point into its own read's storage.
        var pieces: [ByteBuffer] = []
        while wire.readableBytes > 0, let piece = wire.readSlice(length: min(wire.readableBytes, 16_384)) {
            pieces.append(piece)
        }
        var decoder = FastCGIRecordDecoder()
        var records: [FastCGIRecord] = []
        for piece in pieces {
            try decoder.decode(piece) { records.append($0) }
        }
        XCTAssertEqual(records.count, pieces.count)
        for (record, piece) in zip(records, pieces) {
            let recordStart = record.content.withUnsafeReadableBytes { UInt(bitPattern: $0.baseAddress) }
            let pieceRange = piece.withUnsafeReadableBytes {
                UInt(bitPattern: $0.baseAddress)..<(UInt(bitPattern: $0.baseAddress) + UInt($0.count))
            }
            XCTAssertTrue(pieceRange.contains(recordStart), "the STDIN piece was copied")
        }
        XCTAssertEqual(FastCGITestWire.joiningStdin(records).map(\.content), [content])
    }

    func testCleanEndOfInputIsNotAnError() throws {
        var decoder = FastCGIRecordDecoder()
        var records: [FastCGIRecord] = []
        try decoder.decode(FastCGITestWire.record(.stdin, id: 1)) { records.append($0) }
        XCTAssertFalse(decoder.isInsideRecord)
        try decoder.finish()
        XCTAssertEqual(records, [FastCGIRecord(type: .stdin, requestID: 1, content: ByteBuffer())])
    }

    func testVersionOtherThanOneIsRejectedAtTheFirstByte() {
        for version: UInt8 in [0, 2, 3, 0x7F, 0xFF] {
            var wire = FastCGITestWire.record(.stdin, id: 1, Array("x".utf8))
            wire.setInteger(version, at: wire.readerIndex)
            for length in [1, wire.readableBytes] {
                var decoder = FastCGIRecordDecoder()
                XCTAssertThrowsError(
                    try decoder.decode(wire.getSlice(at: wire.readerIndex, length: length)!) { _ in
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
                bytes[0] = 1 // get past the version check to exercise the length paths
                if bytes.count > 5 {
                    bytes[4] = 0 // keep content lengths small enough to complete sometimes
                }
            }
            var input = ByteBuffer(bytes: bytes)
            var decoder = FastCGIRecordDecoder()
            do {
                while input.readableBytes > 0 {
                    let length = min(input.readableBytes, Int.random(in: 1...64, using: &generator))
                    try decoder.decode(input.readSlice(length: length) ?? ByteBuffer()) { record in
                        XCTAssertLessThanOrEqual(record.content.readableBytes, FastCGIRecord.maximumContentLength)
                        outcomes.records += 1
                    }
                }
                try decoder.finish()
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
