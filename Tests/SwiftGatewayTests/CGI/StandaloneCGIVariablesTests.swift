import NIOHTTP1
import XCTest

@testable import SwiftGateway

final class StandaloneCGIVariablesTests: XCTestCase {
    func testBuildsCGIVariablesLikeApache() {
        var headers = HTTPHeaders()
        headers.add(name: "Host", value: "example.org:8080")
        headers.add(name: "X-Forwarded_For", value: "spoofed")
        headers.add(name: "Proxy", value: "http://evil")
        headers.add(name: "Authorization", value: "Basic x")
        headers.add(name: "Content-Type", value: "text/plain")
        headers.add(name: "Accept", value: "a")
        headers.add(name: "Accept", value: "b")
        let head = HTTPRequestHead(version: .http1_1, method: .POST, uri: "/a%20b/c?x=%20", headers: headers)
        let environment = StandaloneCGIVariables.make(for: head, local: nil, remote: nil)
        XCTAssertEqual(environment["PATH_INFO"], "/a b/c")
        XCTAssertEqual(environment["QUERY_STRING"], "x=%20")
        XCTAssertEqual(environment["SCRIPT_NAME"], "")
        XCTAssertEqual(environment["SERVER_NAME"], "example.org")
        XCTAssertEqual(environment["CONTENT_TYPE"], "text/plain")
        XCTAssertEqual(environment["HTTP_ACCEPT"], "a, b")
        XCTAssertNil(environment["HTTP_X_FORWARDED_FOR"])
        XCTAssertNil(environment["HTTP_PROXY"])
        XCTAssertNil(environment["HTTP_AUTHORIZATION"])
    }

    func testPercentDecodingLeavesMalformedEscapes() {
        XCTAssertEqual(StandaloneCGIVariables.percentDecoded("/%41%zz%4"), "/A%zz%4")
    }
}
