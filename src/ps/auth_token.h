#pragma once
// The optional shared secret of the PS service. Servers and clients read it from a file (mode
// 0600 recommended) or from $SHARDREC_PS_TOKEN, never from the command line (visible in ps(1)).
// With a token configured, every call carries metadata `authorization: Bearer <token>`.
// The channel itself is plaintext (no TLS): the token keeps strangers on a trusted network out,
// it does not protect against someone who can read the traffic.
#include <string>
#include <string_view>

namespace shardrec::ps {

inline constexpr char kPsTokenEnv[] = "SHARDREC_PS_TOKEN";

struct PsToken {
  std::string value;    // empty: no token
  std::string source;   // "file PATH", "$SHARDREC_PS_TOKEN" or "none"
  std::string warning;  // non-empty when the token file is readable by group or others
};

// The token of `token_file` when it is non-empty (surrounding whitespace trimmed; a missing,
// unreadable or empty file is a shardrec::UserError), else $SHARDREC_PS_TOKEN (trimmed), else none.
PsToken LoadPsToken(const std::string& token_file);

// "Bearer <token>": the value of the `authorization` metadata.
std::string BearerHeader(std::string_view token);

// Whether `header` (the received `authorization` value) equals BearerHeader(token), compared in
// time independent of where they differ.
bool BearerMatches(std::string_view header, std::string_view token);

}  // namespace shardrec::ps
