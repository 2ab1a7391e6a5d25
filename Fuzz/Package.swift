// swift-tools-version:6.1
import PackageDescription

// `make fuzz`'s Swift targets (docs/testing.md): libFuzzer programs built apart from SwiftGateway's
// package, so that its users never see them. `make fuzz` builds them into ../.build-fuzz with
// `-sanitize=fuzzer,address` and `-enable-testing`: they reach the runtime's internal decoders
// through `@testable import`, which leaves the library's public API as it is.
// SwiftPM names a package by path after its directory (the checkout's, whatever it is called).
let gatewayPackage = Context.packageDirectory.split(separator: "/").dropLast().last.map(String.init) ?? "SwiftGateway"
let gateway = Target.Dependency.product(name: "SwiftGateway", package: gatewayPackage)

let package = Package(
    name: "SwiftGatewayFuzz",
    dependencies: [
        .package(path: ".."),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.8.0", traits: []),
    ],
    targets: [
        // libFuzzer's driver, declared for Swift: each program's main hands over to it
        .target(name: "FuzzerDriver"),
        // FastCGIRecordDecoder fed in random splits, as a connection's reads come
        .executableTarget(
            name: "FuzzRecordDecoder",
            dependencies: ["FuzzerDriver", gateway, .product(name: "NIOCore", package: "swift-nio")]
        ),
        // FastCGINameValuePairs and CGIEnvironment over one PARAMS stream
        .executableTarget(
            name: "FuzzNameValuePairs",
            dependencies: ["FuzzerDriver", gateway, .product(name: "NIOCore", package: "swift-nio")]
        ),
        // a PARAMS stream to the application's HTTPRequest
        .executableTarget(
            name: "FuzzCGIRequest",
            dependencies: [
                "FuzzerDriver",
                gateway,
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)
