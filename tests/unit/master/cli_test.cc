// SPDX-License-Identifier: Apache-2.0
// Unit tests for command-line parsing.
#include "master/cli.h"

#include <gtest/gtest.h>

#include <vector>

#include "config.h"

namespace photon::master {
namespace {

CliParse parse(std::vector<const char*> args) {
    args.insert(args.begin(), "photon");
    return parseCli(static_cast<int>(args.size()), args.data());
}

TEST(CliTest, DefaultsWithoutArguments) {
    auto r = parse({});
    ASSERT_TRUE(r.error.empty());
    EXPECT_EQ(r.opts.config_path, PHOTON_CONF_PATH);
    EXPECT_FALSE(r.opts.daemon);
    EXPECT_FALSE(r.opts.test);
    EXPECT_FALSE(r.opts.log_level.has_value());
    EXPECT_TRUE(r.opts.signal.empty());
}

TEST(CliTest, AcceptsShortAndLongForms) {
    auto a = parse({"-c", "x.yaml", "-l", "debug", "-d", "-t"});
    ASSERT_TRUE(a.error.empty()) << a.error;
    EXPECT_EQ(a.opts.config_path, "x.yaml");
    EXPECT_EQ(*a.opts.log_level, "debug");
    EXPECT_TRUE(a.opts.daemon);
    EXPECT_TRUE(a.opts.test);
    auto b = parse({"--config=y.toml", "--log-level", "warn", "--daemon", "--upgrade"});
    ASSERT_TRUE(b.error.empty()) << b.error;
    EXPECT_EQ(b.opts.config_path, "y.toml");
    EXPECT_EQ(*b.opts.log_level, "warn");
    EXPECT_TRUE(b.opts.daemon);
    EXPECT_TRUE(b.opts.upgrade);
}

TEST(CliTest, CombinedShortFlagsAndAttachedValue) {
    auto r = parse({"-tdcfile.json"});
    ASSERT_TRUE(r.error.empty()) << r.error;
    EXPECT_TRUE(r.opts.test);
    EXPECT_TRUE(r.opts.daemon);
    EXPECT_EQ(r.opts.config_path, "file.json");
}

TEST(CliTest, SignalValuesAreValidated) {
    for (const char* s : {"reload", "reopen", "quit", "stop"}) {
        auto r = parse({"-s", s});
        EXPECT_TRUE(r.error.empty()) << s;
        EXPECT_EQ(r.opts.signal, s);
    }
    auto bad = parse({"-s", "restart"});
    EXPECT_NE(bad.error.find("invalid signal 'restart'"), std::string::npos) << bad.error;
}

TEST(CliTest, RejectsUnknownOptionsAndBadValues) {
    EXPECT_NE(parse({"-x"}).error.find("unknown option -x"), std::string::npos);
    EXPECT_NE(parse({"--frobnicate"}).error.find("unknown option --frobnicate"), std::string::npos);
    EXPECT_NE(parse({"-l", "loud"}).error.find("invalid log level"), std::string::npos);
    EXPECT_NE(parse({"-c"}).error.find("needs a value"), std::string::npos);
    EXPECT_NE(parse({"--daemon=yes"}).error.find("takes no value"), std::string::npos);
    EXPECT_NE(parse({"stray"}).error.find("unexpected argument"), std::string::npos);
}

TEST(CliTest, HelpNamesEveryOptionAndSignal) {
    std::string h = helpText();
    for (const char* opt :
         {"--config", "--log-level", "--daemon", "--upgrade", "--test", "--signal", "--help",
          "--version", "reload", "reopen", "quit", "stop", "QUIT", "HUP", "USR1"}) {
        EXPECT_NE(h.find(opt), std::string::npos) << opt;
    }
}

TEST(CliTest, VersionNamesLibraries) {
    std::string v = versionText();
    EXPECT_NE(v.find(PHOTON_VERSION), std::string::npos);
    EXPECT_NE(v.find("libev"), std::string::npos);
    EXPECT_NE(v.find("OpenSSL"), std::string::npos);
    EXPECT_NE(v.find("PCRE2"), std::string::npos);
}

}  // namespace
}  // namespace photon::master
