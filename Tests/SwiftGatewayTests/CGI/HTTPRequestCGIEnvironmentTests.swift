import HTTPTypes
import XCTest

@testable import SwiftGateway

final class HTTPRequestCGIEnvironmentTests: XCTestCase {
    func testBuildsTheRequestHeadFromCGIVariables() throws {
        let head = try HTTPRequest(cgiEnvironment: [
            "REQUEST_METHOD": "POST",
            "REQUEST_URI": "/app/x?y=1",
            "HTTPS": "on",
            "HTTP_HOST": "example.org",
            "HTTP_ACCEPT_LANGUAGE": "en",
            "CONTENT_TYPE": "text/plain",
            "CONTENT_LENGTH": "5",
            "SCRIPT_NAME": "/app",
        ])
        XCTAssertEqual(head.method, .post)
        XCTAssertEqual(head.scheme, "https")
        XCTAssertEqual(head.authority, "example.org")
        XCTAssertEqual(head.path, "/app/x?y=1")
        XCTAssertEqual(head.headerFields[.acceptLanguage], "en")
        XCTAssertEqual(head.headerFields[.contentType], "text/plain")
        XCTAssertEqual(head.headerFields[.contentLength], "5")
        XCTAssertNil(head.headerFields[HTTPField.Name("script-name")!])
    }

    func testHeaderFieldNamesFromCGIVariables() {
        XCTAssertEqual(
            HTTPRequest.headerFieldName(forCGIVariable: "HTTP_X_FORWARDED_FOR"), HTTPField.Name("x-forwarded-for"))
        XCTAssertEqual(HTTPRequest.headerFieldName(forCGIVariable: "HTTP_ACCEPT"), .accept)
        XCTAssertEqual(HTTPRequest.headerFieldName(forCGIVariable: "CONTENT_TYPE"), .contentType)
        XCTAssertNil(HTTPRequest.headerFieldName(forCGIVariable: "HTTP_"))
        XCTAssertNil(HTTPRequest.headerFieldName(forCGIVariable: "HTTPS"))
        XCTAssertNil(HTTPRequest.headerFieldName(forCGIVariable: "HTTP_ÄRGER"))
        XCTAssertNil(HTTPRequest.headerFieldName(forCGIVariable: "HTTP_A B"))
        XCTAssertNil(HTTPRequest.headerFieldName(forCGIVariable: "SERVER_NAME"))
    }

    func testCommonHeaderNamesComeFromTheTableAsTheyWouldBeMade() {
        // The table's names are the ones made per variable, lowercase raw names included.
        for (variable, raw) in [
            ("HTTP_HOST", "host"), ("HTTP_USER_AGENT", "user-agent"), ("HTTP_SEC_FETCH_DEST", "sec-fetch-dest"),
        ] {
            let name = HTTPRequest.headerFieldName(forCGIVariable: variable)
            XCTAssertEqual(name?.rawName, raw)
            XCTAssertEqual(name, HTTPField.Name(raw))
        }
        // Same length as a table entry, different bytes: made, not matched.
        XCTAssertEqual(HTTPRequest.headerFieldName(forCGIVariable: "HTTP_HOSX")?.rawName, "hosx")
        XCTAssertNil(HTTPRequest.headerFieldName(forCGIVariable: "HTTP_HO T"))
    }

    func testARepeatedVariableCountsWithItsLastValue() throws {
        let head = try HTTPRequest(
            cgiEnvironment: CGIEnvironment([
                (name: "REQUEST_METHOD", value: "GE T"), (name: "HTTP_HOST", value: "a.example"),
                (name: "HTTPS", value: "on"), (name: "REQUEST_URI", value: "/first"),
                (name: "REQUEST_METHOD", value: "PUT"), (name: "HTTP_HOST", value: "b.example"),
                (name: "HTTPS", value: "off"), (name: "REQUEST_URI", value: "/last"),
            ]))
        XCTAssertEqual(head.method, .put)
        XCTAssertEqual(head.authority, "b.example")
        XCTAssertEqual(head.scheme, "http")
        XCTAssertEqual(head.path, "/last")
        // Each HTTP_HOST is also a field, in order; HTTPS and REQUEST_* are not fields.
        XCTAssertEqual(head.headerFields[values: HTTPField.Name("host")!], ["a.example", "b.example"])
        XCTAssertEqual(head.headerFields.count, 2)
    }

    func testFallsBackToScriptNameAndPathInfo() throws {
        let head = try HTTPRequest(cgiEnvironment: [
            "REQUEST_METHOD": "GET", "SCRIPT_NAME": "/app", "PATH_INFO": "/a", "QUERY_STRING": "q=1",
        ])
        XCTAssertEqual(head.path, "/app/a?q=1")
        XCTAssertEqual(head.scheme, "http")
    }

    func testRejectsAMissingOrInvalidMethod() {
        XCTAssertThrowsError(try HTTPRequest(cgiEnvironment: [:]))
        XCTAssertThrowsError(try HTTPRequest(cgiEnvironment: ["REQUEST_METHOD": "GE T"]))
    }
}
