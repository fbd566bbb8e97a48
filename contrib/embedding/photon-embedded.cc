// SPDX-License-Identifier: Apache-2.0
// An application that runs the Photon gateway itself, through libphoton (the C++ form of the
// original Photon's "use as a library" example).
//
//   g++ -std=c++20 photon-embedded.cc $(pkg-config --cflags --libs photon) -o photon-embedded
//   ./photon-embedded -c /etc/photon/photon.yaml
//
// The program becomes the master: it binds the listeners, forks the workers and serves until it
// receives SIGQUIT (graceful stop), SIGTERM or SIGINT; SIGHUP reloads the file.
#include <photon/photon.h>

#include <cstdio>
#include <cstring>

int main(int argc, char** argv) {
    // photon-embedded [-c FILE]
    const char* path = "/etc/photon/photon.yaml";
    if (argc == 3 && std::strcmp(argv[1], "-c") == 0) {
        path = argv[2];
    } else if (argc != 1) {
        std::fprintf(stderr, "usage: %s [-c FILE]\n", argv[0]);
        return 2;
    }
    try {
        // Load and validate, as `photon -t` does; every error is in the exception.
        photon::Config config = photon::Config::fromFile(path);
        for (const auto& w : config.warnings()) {
            std::fprintf(stderr, "warning: %s\n", w.c_str());
        }
        std::fprintf(stderr, "photon-embedded: libphoton %s, serving %s\n", photon::version(),
                     config.path().c_str());
        // Create and start the gateway; run() returns once it has stopped.
        photon::Gateway gateway(std::move(config));
        int status = gateway.run();
        std::fprintf(stderr, "photon-embedded: gateway stopped (status %d)\n", status);
        return status;
    } catch (const photon::ConfigError& e) {
        std::fprintf(stderr, "photon-embedded: %s\n", e.what());
        return 1;
    }
}
