import XCTest

@testable import SwiftGateway

final class ConstantTimeEqualsTests: XCTestCase {
    func testTokensCompareOnlyWhenEqual() {
        XCTAssertTrue(constantTimeEquals("abc", "abc"))
        XCTAssertFalse(constantTimeEquals("abc", "abd"))
        XCTAssertFalse(constantTimeEquals("abc", "abcd"))
    }
}
