#pragma once
// The alert channels over libcurl (docs/alerts.md): a webhook (HTTP POST of the alert's JSON)
// and e-mail (SMTP). TLS peers are always verified (system trust store); nothing here logs a
// URL, a recipient's credentials or a password. Each transfer has a total timeout and is
// aborted when its stop_token is requested. libcurl stays inside alert_channels.cc.
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "host/command_runner.h"
#include "telemetry/alerter.h"

namespace taolie::telemetry {

struct WebhookOptions {
  std::string url;  // http:// or https://; may carry a token: never logged
  std::chrono::seconds timeout{10};
  std::string user_agent = "taolie-host-agent";
};

// 2xx = delivered; 408, 429 and 5xx or a transport error = try again; any other answer is final.
std::unique_ptr<AlertChannel> MakeWebhookChannel(WebhookOptions options);

struct SmtpOptions {
  std::string host;
  int port = 25;
  bool starttls = true;  // required: no mail when the server does not offer STARTTLS
  bool tls = false;      // smtps://: TLS from the first byte
  std::string username;  // "" = no AUTH
  std::string password;  // secret
  std::string from;      // envelope and From: address
  std::vector<std::string> to;
  std::chrono::seconds timeout{30};
};

// Refused STARTTLS or login and refused recipients are final; connection trouble is retried.
std::unique_ptr<AlertChannel> MakeSmtpChannel(SmtpOptions options);

// E-mail through the host's own MTA (monitoring.alerts.email without smtp_host): the message
// on the standard input of `<path> -t -i` (recipients from its To: header, a lone "." is no
// end), run by argument vector, never through a shell.
inline constexpr const char* kSendmailPath = "/usr/sbin/sendmail";
struct SendmailOptions {
  std::string path = kSendmailPath;  // a test names its own recording script
  std::string from;                  // From: address
  std::vector<std::string> to;
  std::chrono::seconds timeout{30};
};
// Exit 0 = handed over; EX_TEMPFAIL (75), a timeout or a missing program = try again; any other
// exit status is final.
std::unique_ptr<AlertChannel> MakeSendmailChannel(SendmailOptions options,
                                                  host::CommandRunner& runner);

// "smtp://host:port" or "smtps://host:port" (an IPv6 literal in brackets). Pure.
std::string SmtpUrl(const SmtpOptions& o);
// Splits "a@x, b@y" into addresses (blanks trimmed, empty parts dropped). Pure.
std::vector<std::string> SplitAddresses(const std::string& list);
// The whole message, CRLF line ends: Date, From, To, Subject (RFC 2047 when not ASCII),
// Message-ID <id@host>, MIME headers, then a plain-text body with every field of the alert.
std::string BuildAlertMail(const Alert& a, const std::string& from,
                           const std::vector<std::string>& to, const std::string& message_id);
// RFC 5322 date, e.g. "Wed, 02 Dec 2026 13:37:51 +0000". Pure.
std::string MailDate(SystemTime t);

}  // namespace taolie::telemetry
