import XCTest

@testable import SwiftGateway

final class StandaloneOptionsTests: XCTestCase {
    func testParsesTheListenModes() throws {
        XCTAssertEqual(
            try StandaloneOptions.parse(["--fastcgi", "unix:/run/a.sock"])?.mode, .fastCGI(.unix(path: "/run/a.sock")))
        XCTAssertEqual(
            try StandaloneOptions.parse(["--fastcgi", "127.0.0.1:9000"])?.mode,
            .fastCGI(.tcp(host: "127.0.0.1", port: 9000)))
        XCTAssertEqual(
            try StandaloneOptions.parse(["--verbose", "--http", "[::1]:8080"])?.mode,
            .http(.tcp(host: "::1", port: 8080)))
        XCTAssertNil(try StandaloneOptions.parse([]))
    }

    func testRejectsBadAddresses() {
        for arguments in [
            ["--http"], ["--http", "8080"], ["--http", "unix:/x"], ["--fastcgi", "unix:"],
            ["--fastcgi", "h:0"], ["--fastcgi", ":80"], ["--http", "a:1", "--fastcgi", "b:2"],
        ] {
            XCTAssertThrowsError(try StandaloneOptions.parse(arguments), "\(arguments)")
        }
    }
}
