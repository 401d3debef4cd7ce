// Builds against the installed ferry package: a client for a daemon that is not there times out.
#include <iostream>

#include "ctl/client.h"

int main() {
  using namespace std::chrono_literals;
  ferry::client::ClientOptions options;
  options.endpoint = "ipc:///nonexistent/ferry-package-test.sock";
  options.timeout = 50ms;
  ferry::client::Client client(options);
  auto status = client.status();
  if (status || status.error().code != ferry::Errc::timeout) {
    std::cerr << "consumer: expected a timeout\n";
    return 1;
  }
  std::cout << "consumer ok: " << ferry::to_string(status.error()) << "\n";
  return 0;
}
