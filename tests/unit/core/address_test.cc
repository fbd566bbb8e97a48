// SPDX-License-Identifier: Apache-2.0
// Tests for listen addresses, upstream host:port and CIDR parsing (core/address.h).
#include "core/address.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <string>

namespace photon::core {
namespace {

std::string listenError(std::string_view s) {
    auto r = parseListenAddress(s);
    EXPECT_FALSE(r.ok()) << "'" << s << "' parsed unexpectedly";
    return r.ok() ? std::string() : r.error().msg;
}

std::string hostPortError(std::string_view s) {
    auto r = parseHostPort(s);
    EXPECT_FALSE(r.ok()) << "'" << s << "' parsed unexpectedly";
    return r.ok() ? std::string() : r.error().msg;
}

TEST(AddressTest, ParsesIpv4ListenAddress) {
    auto r = parseListenAddress("192.168.1.2:8080");
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->ip.family, AddressFamily::Ipv4);
    EXPECT_EQ(r->port, 8080);
    EXPECT_EQ(r->toString(), "192.168.1.2:8080");
}

TEST(AddressTest, ParsesBracketedIpv6ListenAddress) {
    auto r = parseListenAddress("[::1]:443");
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->ip.family, AddressFamily::Ipv6);
    EXPECT_EQ(r->port, 443);
    EXPECT_EQ(r->toString(), "[::1]:443");
}

TEST(AddressTest, AcceptsLocalhostAndWildcardSpellings) {
    EXPECT_EQ(parseListenAddress("localhost:80")->toString(), "127.0.0.1:80");
    EXPECT_EQ(parseListenAddress("*:80")->toString(), "0.0.0.0:80");
    EXPECT_EQ(parseListenAddress(":80")->toString(), "0.0.0.0:80");
}

TEST(AddressTest, RequiresPortInRange) {
    EXPECT_NE(listenError("127.0.0.1").find("port is required"), std::string::npos);
    EXPECT_NE(listenError("127.0.0.1:0").find("between 1 and 65535"), std::string::npos);
    EXPECT_NE(listenError("127.0.0.1:65536").find("between 1 and 65535"), std::string::npos);
    EXPECT_NE(listenError("127.0.0.1:http").find("between 1 and 65535"), std::string::npos);
    EXPECT_NE(listenError("[::1]").find("port is required"), std::string::npos);
    EXPECT_TRUE(parseListenAddress("127.0.0.1:65535").ok());
}

TEST(AddressTest, RejectsHostNamesAndUnbracketedIpv6ForListeners) {
    EXPECT_NE(listenError("example.com:80").find("IP literal"), std::string::npos);
    EXPECT_NE(listenError("::1:80").find("brackets"), std::string::npos);
    EXPECT_NE(listenError("[127.0.0.1]:80").find("only IPv6"), std::string::npos);
    EXPECT_NE(listenError("[::1:80").find("missing ']'"), std::string::npos);
    EXPECT_FALSE(parseListenAddress("256.1.1.1:80").ok());
}

TEST(AddressTest, ToSockaddrFillsFamilyPortAndAddress) {
    sockaddr_storage ss;
    auto v4 = parseListenAddress("10.1.2.3:8080").value();
    ASSERT_EQ(v4.toSockaddr(ss), sizeof(sockaddr_in));
    auto* in = reinterpret_cast<sockaddr_in*>(&ss);
    EXPECT_EQ(in->sin_family, AF_INET);
    EXPECT_EQ(ntohs(in->sin_port), 8080);
    EXPECT_EQ(ntohl(in->sin_addr.s_addr), 0x0A010203u);
    IpAddress back;
    ASSERT_TRUE(IpAddress::fromSockaddr(reinterpret_cast<sockaddr*>(&ss), back));
    EXPECT_EQ(back, v4.ip);

    auto v6 = parseListenAddress("[2001:db8::1]:443").value();
    ASSERT_EQ(v6.toSockaddr(ss), sizeof(sockaddr_in6));
    EXPECT_EQ(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_family, AF_INET6);
    ASSERT_TRUE(IpAddress::fromSockaddr(reinterpret_cast<sockaddr*>(&ss), back));
    EXPECT_EQ(back.toString(), "2001:db8::1");
}

TEST(AddressTest, ParsesUpstreamIpAndNameForms) {
    auto a = parseHostPort("127.0.0.1:3001");
    ASSERT_TRUE(a.ok());
    EXPECT_EQ(a->kind, HostKind::Ipv4);
    EXPECT_EQ(a->host, "127.0.0.1");
    EXPECT_EQ(a->port, 3001);

    auto b = parseHostPort("[2001:DB8::1]:8443");
    ASSERT_TRUE(b.ok());
    EXPECT_EQ(b->kind, HostKind::Ipv6);
    EXPECT_EQ(b->host, "2001:db8::1");  // canonical form
    EXPECT_EQ(b->toString(), "[2001:db8::1]:8443");

    auto c = parseHostPort("api-1.internal_svc.example.com:80");
    ASSERT_TRUE(c.ok());
    EXPECT_EQ(c->kind, HostKind::Name);
    EXPECT_EQ(c->host, "api-1.internal_svc.example.com");
    EXPECT_EQ(c->toString(), "api-1.internal_svc.example.com:80");
}

TEST(AddressTest, RejectsMalformedUpstreamAddresses) {
    EXPECT_NE(hostPortError("backend").find("port is required"), std::string::npos);
    EXPECT_NE(hostPortError("backend:").find("between 1 and 65535"), std::string::npos);
    EXPECT_NE(hostPortError("backend:99999").find("between 1 and 65535"), std::string::npos);
    EXPECT_NE(hostPortError("http://backend:80").find("without a scheme"), std::string::npos);
    EXPECT_NE(hostPortError("backend:80/api").find("without a path"), std::string::npos);
    EXPECT_NE(hostPortError(":80").find("host is missing"), std::string::npos);
    EXPECT_NE(hostPortError("bad host:80").find("valid DNS name"), std::string::npos);
    EXPECT_NE(hostPortError("-bad.example:80").find("valid DNS name"), std::string::npos);
    EXPECT_NE(hostPortError("a..b:80").find("valid DNS name"), std::string::npos);
    EXPECT_NE(hostPortError("2001:db8::1:80").find("brackets"), std::string::npos);
    EXPECT_NE(hostPortError("[backend]:80").find("not an IPv6"), std::string::npos);
    EXPECT_FALSE(parseHostPort(std::string(64, 'a') + ".example:80").ok());
}

TEST(AddressTest, ParsesCidrsAndBareAddresses) {
    auto a = parseCidr("10.0.0.0/8");
    ASSERT_TRUE(a.ok());
    EXPECT_EQ(a->prefix_len, 8);
    EXPECT_EQ(a->toString(), "10.0.0.0/8");
    auto b = parseCidr("192.168.1.10");
    ASSERT_TRUE(b.ok());
    EXPECT_EQ(b->prefix_len, 32);
    auto c = parseCidr("fd00::/8");
    ASSERT_TRUE(c.ok());
    EXPECT_EQ(c->prefix_len, 8);
    EXPECT_EQ(parseCidr("0.0.0.0/0")->prefix_len, 0);
}

TEST(AddressTest, RejectsBadCidrs) {
    auto host_bits = parseCidr("10.0.0.1/8");
    ASSERT_FALSE(host_bits.ok());
    EXPECT_NE(host_bits.error().msg.find("did you mean '10.0.0.0/8'"), std::string::npos);
    EXPECT_FALSE(parseCidr("10.0.0.0/33").ok());
    EXPECT_FALSE(parseCidr("fd00::/129").ok());
    EXPECT_FALSE(parseCidr("10.0.0.0/").ok());
    EXPECT_FALSE(parseCidr("10.0.0.0/8x").ok());
    EXPECT_FALSE(parseCidr("example.com/8").ok());
}

TEST(AddressTest, CidrContainsChecksPrefixBits) {
    auto net = parseCidr("172.16.0.0/12").value();
    EXPECT_TRUE(net.contains(parseIpAddress("172.16.0.1").value()));
    EXPECT_TRUE(net.contains(parseIpAddress("172.31.255.255").value()));
    EXPECT_FALSE(net.contains(parseIpAddress("172.32.0.0").value()));
    EXPECT_FALSE(net.contains(parseIpAddress("::1").value()));
    auto v6 = parseCidr("2001:db8::/32").value();
    EXPECT_TRUE(v6.contains(parseIpAddress("2001:db8:ffff::1").value()));
    EXPECT_FALSE(v6.contains(parseIpAddress("2001:db9::1").value()));
    EXPECT_FALSE(v6.contains(parseIpAddress("10.0.0.1").value()));
    EXPECT_TRUE(parseCidr("0.0.0.0/0")->contains(parseIpAddress("8.8.8.8").value()));
}

TEST(AddressTest, Ipv4CidrMatchesV4MappedIpv6) {
    auto net = parseCidr("10.0.0.0/8").value();
    auto mapped = parseIpAddress("::ffff:10.1.2.3").value();
    EXPECT_TRUE(mapped.isV4Mapped());
    EXPECT_TRUE(net.contains(mapped));
    EXPECT_FALSE(net.contains(parseIpAddress("::ffff:11.1.2.3").value()));
}

}  // namespace
}  // namespace photon::core
