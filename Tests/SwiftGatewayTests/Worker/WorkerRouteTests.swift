import HTTPTypes
import NIOCore
import XCTest

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

@testable import SwiftGateway

final class WorkerRouteTests: XCTestCase {
    private func hex(_ bytes: [UInt8]) -> String {
        bytes.map { String($0, radix: 16).count == 1 ? "0" + String($0, radix: 16) : String($0, radix: 16) }.joined()
    }

    func testSHA1MatchesTheStandardVectors() {
        XCTAssertEqual(self.hex(SHA1.hash([])), "da39a3ee5e6b4b0d3255bfef95601890afd80709")
        XCTAssertEqual(self.hex(SHA1.hash(Array("abc".utf8))), "a9993e364706816aba3e25717850c26c9cd0d89d")
        XCTAssertEqual(
            self.hex(SHA1.hash(Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8))),
            "84983e441c3bd26ebaae4aa1f95129e5e54670f1")
        XCTAssertEqual(
            self.hex(SHA1.hash([UInt8](repeating: 0x61, count: 1_000))), "291e9a6c66994949b57ba5e650361e98fc36b1ba")
    }

    func testHMACSHA1MatchesRFC2202() {
        XCTAssertEqual(
            self.hex(SHA1.hmac(key: [UInt8](repeating: 0x0B, count: 20), message: Array("Hi There".utf8))),
            "b617318655057264e28bc0b6fb378c8ef146be00")
        XCTAssertEqual(
            self.hex(SHA1.hmac(key: Array("Jefe".utf8), message: Array("what do ya want for nothing?".utf8))),
            "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79")
        // A key longer than the block is hashed first (test case 6).
        XCTAssertEqual(
            self.hex(
                SHA1.hmac(
                    key: [UInt8](repeating: 0xAA, count: 80),
                    message: Array("Test Using Larger Than Block-Size Key - Hash Key First".utf8))),
            "aa4ae5e15272d00e95705637ce8a3b55ed402112")
    }

    /// The value Apache's module checks (`sg_affinity.c`), as Python's `hmac` computes it.
    func testARouteIsThePidTheStartAndTheirMACInBase64URL() {
        let route = WorkerRoute(
            token: String(repeating: "0123456789abcdef", count: 4), socketPath: "/run/sg/1.1.site.sock", pid: 4242,
            start: 1_765_000_000_123_456)
        XCTAssertEqual(route.text, "AAAQkgAGRUIWCTJAgh28XwWQtjoH-ylq")
        XCTAssertEqual(route.socketName, "swift-gateway/AAAQkgAGRUIWCTJAgh28XwWQtjoH-ylq")
    }

    func testARouteDependsOnTheWorkerTheGroupAndItsSecret() {
        let base = WorkerRoute(token: "secret", socketPath: "/s/1.1.a.sock", pid: 10, start: 20)
        XCTAssertEqual(base.text.count, 32)
        XCTAssertEqual(base, WorkerRoute(token: "secret", socketPath: "/s/1.1.a.sock", pid: 10, start: 20))
        for other in [
            WorkerRoute(token: "Secret", socketPath: "/s/1.1.a.sock", pid: 10, start: 20),
            WorkerRoute(token: "secret", socketPath: "/s/1.2.a.sock", pid: 10, start: 20),
            WorkerRoute(token: "secret", socketPath: "/s/1.1.a.sock", pid: 11, start: 20),
            WorkerRoute(token: "secret", socketPath: "/s/1.1.a.sock", pid: 10, start: 21),
        ] {
            XCTAssertNotEqual(other.text, base.text)
        }
    }

    func testBase64URLHasNoPaddingAndTheURLAlphabet() {
        XCTAssertEqual(WorkerRoute.base64URL([0xFB, 0xFF]), "-_8")
        XCTAssertEqual(WorkerRoute.base64URL(Array("foobar".utf8)), "Zm9vYmFy")
        XCTAssertEqual(WorkerRoute.base64URL(Array("fo".utf8)), "Zm8")
    }

    func testTheCookieNamesTheMountAndIsSecureOverHTTPS() throws {
        let route = WorkerRoute(token: "t", socketPath: "/s", pid: 1, start: 2)
        let cookie = RouteCookie(name: "SGROUTE", route: route)
        func field(_ pairs: [(name: String, value: String)]) throws -> String {
            cookie.field(for: try CGIEnvironment(parameterStream: FastCGITestWire.pairs(pairs))).value
        }
        XCTAssertEqual(
            try field([(name: "SCRIPT_NAME", value: "/app")]),
            "SGROUTE=\(route.text); Path=/app; HttpOnly; SameSite=Lax")
        XCTAssertEqual(
            try field([(name: "SCRIPT_NAME", value: ""), (name: "HTTPS", value: "on")]),
            "SGROUTE=\(route.text); Path=/; HttpOnly; SameSite=Lax; Secure")
        XCTAssertEqual(try field([(name: "REQUEST_SCHEME", value: "https")]).hasSuffix("; Secure"), true)
        XCTAssertEqual(RouteCookie.cookiePath(scriptName: "/a;b"), "/")
        XCTAssertEqual(RouteCookie.cookiePath(scriptName: "/a b"), "/")
        XCTAssertEqual(RouteCookie.cookiePath(scriptName: "relative"), "/")
        XCTAssertEqual(RouteCookie.cookiePath(scriptName: nil), "/")
    }

    func testTheOwnSocketListensInTheAbstractNamespaceAndVanishesWhenClosed() throws {
        let name = "swift-gateway/unit-test-\(getpid())"
        let first = try XCTUnwrap(RoutedConnectionAcceptor.listen(name: name, backlog: 4, logger: .init(label: "t")))
        XCTAssertNil(RoutedConnectionAcceptor.listen(name: name, backlog: 4, logger: .init(label: "t")), "taken")
        close(first)
        let second = try XCTUnwrap(RoutedConnectionAcceptor.listen(name: name, backlog: 4, logger: .init(label: "t")))
        close(second)
    }
}
