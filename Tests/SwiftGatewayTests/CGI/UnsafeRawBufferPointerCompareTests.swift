import XCTest

@testable import SwiftGateway

final class UnsafeRawBufferPointerCompareTests: XCTestCase {
    func testComparesWholeBytesAndPrefixes() {
        Array("HTTP_HOST".utf8).withUnsafeBytes { name in
            XCTAssertTrue(name.hasSameBytes(as: "HTTP_HOST"))
            XCTAssertFalse(name.hasSameBytes(as: "HTTP_HOSX"))
            XCTAssertFalse(name.hasSameBytes(as: "HTTP_HOS"))
            XCTAssertTrue(name.startsWithBytes(of: "HTTP_"))
            XCTAssertTrue(name.startsWithBytes(of: ""))
            XCTAssertFalse(name.startsWithBytes(of: "HTTPS"))
            XCTAssertFalse(name.startsWithBytes(of: "HTTP_HOST_X"))
            XCTAssertTrue(name.hasSameBytes(as: Array("HTTP_HOST".utf8)))
            XCTAssertFalse(name.hasSameBytes(as: Array("HTTP_HOSt".utf8)))
        }
        [UInt8]().withUnsafeBytes { empty in
            XCTAssertTrue(empty.hasSameBytes(as: ""))
            XCTAssertFalse(empty.hasSameBytes(as: "A"))
            XCTAssertFalse(empty.startsWithBytes(of: "A"))
            XCTAssertTrue(empty.hasSameBytes(as: [UInt8]()))
        }
    }
}
