import NIOCore
import XCTest

@testable import SwiftGateway

final class FastCGINameValuePairsTests: XCTestCase {
    private func assertPairs(
        _ actual: [(name: String, value: String)],
        _ expected: [(name: String, value: String)],
        file: StaticString = #filePath,
        line: UInt = #line
    ) {
        XCTAssertEqual(actual.map(\.name), expected.map(\.name), file: file, line: line)
        XCTAssertEqual(actual.map(\.value), expected.map(\.value), file: file, line: line)
    }

    func testEmptyStreamHasNoPairs() throws {
        XCTAssertEqual(try FastCGINameValuePairs.decode(ByteBuffer()).count, 0)
        XCTAssertEqual(FastCGITestWire.pairs([]).readableBytes, 0)
    }

    func testShortLengthsUseOneByte() {
        let name = String(repeating: "n", count: 127)
        let buffer = FastCGITestWire.pairs([(name: name, value: "v")])
        XCTAssertEqual(Array(buffer.readableBytesView.prefix(2)), [127, 1])
        XCTAssertEqual(buffer.readableBytes, 2 + 127 + 1)
    }

    func testLongLengthsUseFourBytesWithTheHighBit() {
        let value = String(repeating: "v", count: 128)
        let buffer = FastCGITestWire.pairs([(name: "N", value: value)])
        XCTAssertEqual(Array(buffer.readableBytesView.prefix(5)), [1, 0x80, 0, 0, 128])
        XCTAssertEqual(buffer.readableBytes, 5 + 1 + 128)

        let big = String(repeating: "b", count: 70_000)
        let bigBuffer = FastCGITestWire.pairs([(name: big, value: "")])
        XCTAssertEqual(Array(bigBuffer.readableBytesView.prefix(5)), [0x80, 0x01, 0x11, 0x70, 0])
    }

    func testRoundTripAcrossTheLengthBoundaries() throws {
        var pairs: [(name: String, value: String)] = []
        for length in [0, 1, 126, 127, 128, 129, 255, 256, 65_535, 65_536, 200_000] {
            pairs.append((name: "NAME_\(length)", value: String(repeating: "x", count: length)))
            pairs.append((name: String(repeating: "k", count: max(length, 1)), value: "short"))
        }
        pairs.append((name: "DUPLICATE", value: "first"))
        pairs.append((name: "DUPLICATE", value: "second"))
        pairs.append((name: "UNICODE_é", value: "ünïcödé ✓"))
        self.assertPairs(try FastCGINameValuePairs.decode(FastCGITestWire.pairs(pairs)), pairs)
    }

    func testLengthsCountUTF8Bytes() {
        let buffer = FastCGITestWire.pairs([(name: "é", value: "✓")])
        XCTAssertEqual(Array(buffer.readableBytesView), [2, 3, 0xC3, 0xA9, 0xE2, 0x9C, 0x93])
    }

    func testNonCanonicalFourByteLengthDecodes() throws {
        // A four-byte length may encode a small number; the high bit is only the marker.
        var buffer = ByteBuffer(bytes: [0x80, 0, 0, 5, 0x80, 0, 0, 2])
        buffer.writeString("HELLOhi")
        self.assertPairs(try FastCGINameValuePairs.decode(buffer), [(name: "HELLO", value: "hi")])
    }

    func testPairsSpanningRecordBoundariesDecodeFromTheConcatenatedStream() throws {
        let pairs: [(name: String, value: String)] = [
            (name: "SCRIPT_NAME", value: "/app"),
            (name: "HTTP_COOKIE", value: String(repeating: "c", count: 300)),
            (name: String(repeating: "N", count: 200), value: "v"),
            (name: "QUERY_STRING", value: ""),
        ]
        for recordSize in [1, 2, 3, 5, 7, 64, 129] {
            let wire = FastCGITestWire.params(id: 1, pairs, recordSize: recordSize)
            let records = try FastCGITestWire.decodeAll(wire)
            XCTAssertTrue(records.allSatisfy { $0.type == .params && $0.content.readableBytes <= recordSize })
            XCTAssertEqual(records.last?.content.readableBytes, 0)
            let stream = FastCGITestWire.concatenate(records.map(\.content))
            self.assertPairs(try FastCGINameValuePairs.decode(stream), pairs)
        }
    }

    func testEveryTruncationThrows() {
        let whole = FastCGITestWire.pairs([
            (name: "A", value: "1"),
            (name: String(repeating: "L", count: 130), value: String(repeating: "v", count: 140)),
        ])
        // Cutting right after the first pair leaves a valid stream; every other cut must fail.
        let firstPairLength = 4
        for length in 1..<whole.readableBytes where length != firstPairLength {
            let prefix = whole.getSlice(at: whole.readerIndex, length: length) ?? ByteBuffer()
            XCTAssertThrowsError(try FastCGINameValuePairs.decode(prefix), "prefix \(length)") { error in
                XCTAssertEqual(error as? FastCGIError, .malformedNameValuePair, "prefix \(length)")
            }
        }
        XCTAssertNoThrow(try FastCGINameValuePairs.decode(whole.getSlice(at: 0, length: firstPairLength)!))
    }

    func testLengthsLargerThanTheRemainingBytesThrow() {
        let cases: [[UInt8]] = [
            [5, 1, 0x41, 0x42], // name claims 5 bytes, only 2 follow
            [1, 9, 0x41, 0x42], // value claims 9 bytes
            [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x41], // both claim 2^31 - 1
            [0x80, 0, 0], // four-byte length cut short
            [1], // value length missing
        ]
        for bytes in cases {
            XCTAssertThrowsError(try FastCGINameValuePairs.decode(ByteBuffer(bytes: bytes)), "\(bytes)") { error in
                XCTAssertEqual(error as? FastCGIError, .malformedNameValuePair, "\(bytes)")
            }
        }
    }

    func testInvalidUTF8NameThrowsButValueIsRepaired() throws {
        XCTAssertThrowsError(try FastCGINameValuePairs.decode(ByteBuffer(bytes: [2, 1, 0x41, 0xFF, 0x42]))) { error in
            XCTAssertEqual(error as? FastCGIError, .invalidUTF8)
        }
        XCTAssertThrowsError(try FastCGINameValuePairs.decode(ByteBuffer(bytes: [1, 0, 0xC3]))) { error in
            XCTAssertEqual(error as? FastCGIError, .invalidUTF8)
        }
        let pairs = try FastCGINameValuePairs.decode(ByteBuffer(bytes: [1, 3, 0x41, 0x61, 0xFF, 0x62]))
        self.assertPairs(pairs, [(name: "A", value: "a\u{FFFD}b")])
    }

    func testNonASCIINamesThatAreValidUTF8Decode() throws {
        let pairs = try FastCGINameValuePairs.decode(FastCGITestWire.pairs([(name: "GRÜẞE_😀", value: "ä")]))
        self.assertPairs(pairs, [(name: "GRÜẞE_😀", value: "ä")])
    }

    func testDecodesFromTheReaderIndexOnAndReportsOffsetsFromThere() throws {
        var buffer = ByteBuffer(bytes: [0xEE, 0xEE])
        FastCGINameValuePairs.encode([(name: "A", value: "b")], into: &buffer)
        buffer.writeBytes([1, 9, 0x42])
        buffer.moveReaderIndex(forwardBy: 2)
        XCTAssertThrowsError(try FastCGINameValuePairs.decode(buffer)) { error in
            XCTAssertEqual(error as? FastCGIError, .malformedNameValuePair)
            XCTAssertTrue("\(error)".contains("offset 4"), "\(error)")
        }
        buffer.moveWriterIndex(to: buffer.writerIndex - 3)
        self.assertPairs(try FastCGINameValuePairs.decode(buffer), [(name: "A", value: "b")])
    }

    func testRandomBytesNeverCrash() {
        var generator = FastCGISeededGenerator(seed: 0xBA1)
        var decoded = 0
        for _ in 0..<1000 {
            let bytes = FastCGITestWire.randomBytes(Int.random(in: 0...64, using: &generator), using: &generator)
            do {
                _ = try FastCGINameValuePairs.decode(ByteBuffer(bytes: bytes))
                decoded += 1
            } catch let error as FastCGIError {
                XCTAssertTrue([.malformedNameValuePair, .invalidUTF8].contains(error), "\(error)")
            } catch {
                XCTFail("unexpected error type: \(error)")
            }
        }
        XCTAssertGreaterThan(decoded, 0)
    }
}
