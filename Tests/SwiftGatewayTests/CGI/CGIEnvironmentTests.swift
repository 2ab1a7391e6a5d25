import NIOCore
import XCTest

@testable import SwiftGateway

final class CGIEnvironmentTests: XCTestCase {
    func testLooksUpAndIteratesTheVariablesOfAParameterStream() throws {
        let long = String(repeating: "v", count: 300)
        let environment = try CGIEnvironment(
            parameterStream: FastCGITestWire.pairs([
                (name: "SCRIPT_NAME", value: "/app"), (name: "HTTP_X_LONG", value: long), (name: "EMPTY", value: ""),
            ]))
        XCTAssertEqual(environment["SCRIPT_NAME"], "/app")
        XCTAssertEqual(environment["HTTP_X_LONG"], long)
        XCTAssertEqual(environment["EMPTY"], "")
        XCTAssertNil(environment["SCRIPT"])
        XCTAssertNil(environment["SCRIPT_NAMEX"])
        XCTAssertEqual(environment.count, 3)
        XCTAssertEqual(environment.map(\.key), ["SCRIPT_NAME", "HTTP_X_LONG", "EMPTY"])
        XCTAssertEqual(environment.dictionary, ["SCRIPT_NAME": "/app", "HTTP_X_LONG": long, "EMPTY": ""])
    }

    func testReadsAStreamInsideALargerBuffer() throws {
        var buffer = ByteBuffer(string: "junk")
        buffer.writeImmutableBuffer(FastCGITestWire.pairs([(name: "A", value: "1"), (name: "B", value: "2")]))
        buffer.moveReaderIndex(forwardBy: 4)
        let environment = try CGIEnvironment(parameterStream: buffer)
        XCTAssertEqual(environment["B"], "2")
        XCTAssertEqual(environment.map(\.key), ["A", "B"])
    }

    func testARepeatedNameAnswersItsLastValue() throws {
        let environment = try CGIEnvironment(
            parameterStream: FastCGITestWire.pairs([(name: "A", value: "1"), (name: "A", value: "2")]))
        XCTAssertEqual(environment["A"], "2")
        XCTAssertEqual(environment.count, 2)
        XCTAssertEqual(environment.dictionary, ["A": "2"])
    }

    func testSettingReplacesAndNilRemoves() {
        var environment: CGIEnvironment = ["A": "1"]
        var copy = environment
        environment["B"] = "2"
        environment["A"] = "3"
        XCTAssertEqual(environment.map(\.key), ["B", "A"])
        XCTAssertEqual(environment["A"], "3")
        XCTAssertEqual(environment.removeValue(forName: "B"), "2")
        XCTAssertNil(environment["B"])
        XCTAssertNil(environment.removeValue(forName: "B"))
        environment["A"] = nil
        XCTAssertTrue(environment.isEmpty)
        // Value semantics: the copy kept what it had.
        XCTAssertEqual(copy["A"], "1")
        copy["A"] = "4"
        XCTAssertEqual(copy.map(\.value), ["4"])
    }

    func testInvalidUTF8InAValueIsReplacedAndInANameRefused() throws {
        var buffer = ByteBuffer(bytes: [1, 2, UInt8(ascii: "A"), 0xFF, UInt8(ascii: "x")])
        XCTAssertEqual(try CGIEnvironment(parameterStream: buffer)["A"], "\u{FFFD}x")
        buffer = ByteBuffer(bytes: [1, 1, 0xFF, UInt8(ascii: "x")])
        XCTAssertThrowsError(try CGIEnvironment(parameterStream: buffer)) { error in
            XCTAssertEqual(error as? FastCGIError, .invalidUTF8)
        }
    }

    func testATruncatedStreamIsRefused() {
        XCTAssertThrowsError(try CGIEnvironment(parameterStream: ByteBuffer(bytes: [4, 1, UInt8(ascii: "A")])))
    }

    func testTheTokenIsHeldApartAndComparedByItsBytes() throws {
        let environment = try CGIEnvironment(
            parameterStream: FastCGITestWire.pairs([
                (name: "A", value: "1"), (name: "SWIFT_GATEWAY_TOKEN", value: "abc"),
            ]))
        XCTAssertNil(environment["SWIFT_GATEWAY_TOKEN"])
        XCTAssertEqual(environment.map(\.key), ["A"])
        XCTAssertTrue(environment.presentedToken(equals: Array("abc".utf8)))
        XCTAssertFalse(environment.presentedToken(equals: Array("abd".utf8)))
        XCTAssertFalse(environment.presentedToken(equals: Array("ab".utf8)))
        XCTAssertFalse(CGIEnvironment(["A": "1"]).presentedToken(equals: Array("abc".utf8)))
    }

    func testADecimalValueIsReadFromItsBytes() {
        let environment: CGIEnvironment = [
            "START": "1796522356468099", "ZERO": "0", "EMPTY": "", "WORD": "soon", "SIGNED": "-5",
            "PLUS": "+5", "HUGE": "9223372036854775808", "MAX": "9223372036854775807",
        ]
        XCTAssertEqual(environment.decimalValue(named: "START"), 1_796_522_356_468_099)
        XCTAssertEqual(environment.decimalValue(named: "ZERO"), 0)
        XCTAssertEqual(environment.decimalValue(named: "MAX"), Int64.max)
        for name in ["EMPTY", "WORD", "SIGNED", "PLUS", "HUGE", "ABSENT"] {
            XCTAssertNil(environment.decimalValue(named: name), name)
        }
    }
}
