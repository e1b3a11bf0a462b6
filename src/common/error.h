#pragma once
// Errors a user can fix (a bad config, a malformed data line, a bad checkpoint). They carry a
// message that says what and where, and the CLI prints them without a stack trace.
#include <stdexcept>
#include <string>

namespace shardrec {

class UserError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Bad config: the CLI exits with code 2. Message form: "FILE:LINE:COL: field PATH: what".
class ConfigError : public UserError {
 public:
  using UserError::UserError;
};

// Bad input data. Message form: "FILE:LINE: what".
class DataError : public UserError {
 public:
  using UserError::UserError;
};

}  // namespace shardrec
