import HTTPTypes
import XCTest

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

@testable import SwiftGateway

final class FastCGIApplicationRunnerTests: XCTestCase {
    func testTheWaitIsMeasuredFromApachesRequestTime() throws {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        let twoSecondsAgo = (Int64(now.tv_sec) - 2) * 1_000_000 + Int64(now.tv_nsec) / 1_000
        let environment: CGIEnvironment = ["SWIFT_GATEWAY_REQUEST_START": String(twoSecondsAgo)]
        let start = environment.decimalValue(named: "SWIFT_GATEWAY_REQUEST_START")
        let waited = try XCTUnwrap(FastCGIApplicationRunner.secondsWaited(since: start))
        XCTAssertEqual(waited, 2, accuracy: 0.5)
        XCTAssertNil(FastCGIApplicationRunner.secondsWaited(since: nil))
        XCTAssertNil(FastCGIApplicationRunner.secondsWaited(since: 0))
    }

    func testARequestPastQueueTimeoutIsToldWhenToRetry() {
        let response = FastCGIApplicationRunner.queueTimedOut(retryAfter: 1.5)
        XCTAssertEqual(response.status, .serviceUnavailable)
        XCTAssertEqual(response.headerFields[.retryAfter], "2")
    }
}
