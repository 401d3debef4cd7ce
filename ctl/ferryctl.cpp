// ferryctl: the admin command line of a ferry node (docs/ferryctl.md).
#include <exception>
#include <iostream>

#include "ctl/commands.h"

int main(int argc, char** argv) {
  try {
    return ferry::ctl::run(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "ferryctl: " << e.what() << "\n";
  } catch (...) {
    std::cerr << "ferryctl: unknown error\n";
  }
  return ferry::ctl::exit_failure;
}
