import HTTPTypes
import XCTest

@testable import SwiftGateway

final class CGIRequestHeadTests: XCTestCase {
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
        XCTAssertEqual(HTTPRequest.headerFieldName(forCGIVariable: "HTTP_X_FORWARDED_FOR"), HTTPField.Name("x-forwarded-for"))
        XCTAssertEqual(HTTPRequest.headerFieldName(forCGIVariable: "HTTP_ACCEPT"), .accept)
        XCTAssertEqual(HTTPRequest.headerFieldName(forCGIVariable: "CONTENT_TYPE"), .contentType)
        XCTAssertNil(HTTPRequest.headerFieldName(forCGIVariable: "HTTP_"))
        XCTAssertNil(HTTPRequest.headerFieldName(forCGIVariable: "HTTPS"))
        XCTAssertNil(HTTPRequest.headerFieldName(forCGIVariable: "HTTP_ÄRGER"))
        XCTAssertNil(HTTPRequest.headerFieldName(forCGIVariable: "HTTP_A B"))
        XCTAssertNil(HTTPRequest.headerFieldName(forCGIVariable: "SERVER_NAME"))
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

final class CGIResponseHeadTests: XCTestCase {
    func testSerializesStatusFieldsAndContentLength() {
        let response = GatewayResponse(status: .notFound, headerFields: [.contentType: "text/plain"])
        let buffer = CGIResponseHead.serialize(response, contentLength: 3, allocator: .init(), reservingBody: 0)
        XCTAssertEqual(
            String(buffer: buffer),
            "Status: 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n\r\n"
        )
    }

    func testKeepsTheApplicationsContentLengthAndNeutralisesLineBreaksInValues() {
        var fields: HTTPFields = [.contentLength: "7"]
        fields[HTTPField.Name("X-Evil")!] = "a\r\nSet-Cookie: x=1"
        let response = GatewayResponse(status: .ok, headerFields: fields)
        let text = String(buffer: CGIResponseHead.serialize(response, contentLength: 3, allocator: .init(), reservingBody: 0))
        XCTAssertEqual(text.components(separatedBy: "Content-Length").count, 2)
        XCTAssertFalse(text.contains("\r\nSet-Cookie"))
    }
}
