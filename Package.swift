// swift-tools-version:6.1
import PackageDescription

let package = Package(
    name: "SwiftGateway",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "SwiftGateway", targets: ["SwiftGateway"]),
        // Hummingbird 2 applications under the gateway; only programs that use it build Hummingbird.
        .library(name: "SwiftGatewayHummingbird", targets: ["SwiftGatewayHummingbird"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        // Without the FoundationURL trait: no Foundation in the process (2.4 MiB less RSS per worker).
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.8.0", traits: []),
        // Without its default traits: FoundationEssentials rather than Foundation, no swift-configuration.
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1", traits: []),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.0.0"),
    ],
    targets: [
        .target(name: "CSwiftGatewayLinux"),
        .target(
            name: "SwiftGateway",
            dependencies: [
                "CSwiftGatewayLinux",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
            ]
        ),
        .target(
            name: "SwiftGatewayHummingbird",
            dependencies: [
                "SwiftGateway",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // `make run`'s site (`swift build --product ExampleSite`; not a product: dependents need only the library).
        .executableTarget(
            name: "ExampleSite",
            dependencies: [
                "SwiftGateway",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
            ],
            path: "Examples/ExampleSite"
        ),
        // A Hummingbird 2 router application under the gateway (`make` builds it for the tests and `make bench`).
        .executableTarget(
            name: "HummingbirdSite",
            dependencies: [
                "SwiftGatewayHummingbird",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            path: "Examples/HummingbirdSite"
        ),
        // The program the integration tests and `make bench` run (`make` builds it; not a product).
        .executableTarget(
            name: "GatewayFixture",
            dependencies: [
                "SwiftGateway",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
            ],
            path: "Tests/Fixtures/GatewayFixture"
        ),
        .testTarget(
            name: "SwiftGatewayTests",
            dependencies: [
                "SwiftGateway",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
            ]
        ),
        .testTarget(
            name: "SwiftGatewayHummingbirdTests",
            dependencies: [
                "SwiftGatewayHummingbird",
                "SwiftGateway",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)
