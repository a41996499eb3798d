#include "telemetry/alert_channels.h"

#include <curl/curl.h>

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <sstream>

#include "common/curl_global.h"
#include "common/secrets.h"
#include "common/time_format.h"

namespace taolie::telemetry {
namespace {

struct CurlDeleter {
  void operator()(CURL* c) const { curl_easy_cleanup(c); }
};
struct ListDeleter {
  void operator()(curl_slist* l) const { curl_slist_free_all(l); }
};
using CurlPtr = std::unique_ptr<CURL, CurlDeleter>;
using ListPtr = std::unique_ptr<curl_slist, ListDeleter>;

int AbortWhenStopped(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  const auto* stop = static_cast<const std::stop_token*>(user);
  return stop->stop_requested() ? 1 : 0;
}

size_t DiscardBody(char*, size_t size, size_t n, void*) { return size * n; }

struct Upload {
  const std::string* text;
  size_t offset = 0;
};

size_t ReadUpload(char* out, size_t size, size_t n, void* user) {
  auto* u = static_cast<Upload*>(user);
  const size_t take = std::min(size * n, u->text->size() - u->offset);
  std::copy_n(u->text->data() + u->offset, take, out);
  u->offset += take;
  return take;
}

// Options every transfer shares: total timeout, no signals, abort on stop, verified TLS.
void CommonOptions(CURL* c, std::chrono::seconds timeout, const std::stop_token* stop) {
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, static_cast<long>(timeout.count() * 1000));
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS,
                   static_cast<long>(std::min<int64_t>(timeout.count(), 10) * 1000));
  curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, AbortWhenStopped);
  curl_easy_setopt(c, CURLOPT_XFERINFODATA, stop);
  curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
  curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
}

Status TransportError(CURLcode rc, const char* what) {
  if (rc == CURLE_ABORTED_BY_CALLBACK) {
    return MakeError(ErrorCode::kCancelled, std::string(what) + ": stopped");
  }
  const ErrorCode code =
      rc == CURLE_OPERATION_TIMEDOUT ? ErrorCode::kDeadlineExceeded : ErrorCode::kUnavailable;
  return MakeError(code, std::string(what) + ": " + curl_easy_strerror(rc));
}

class WebhookChannel final : public AlertChannel {
 public:
  explicit WebhookChannel(WebhookOptions o) : o_(std::move(o)) {}
  const char* Name() const override { return "webhook"; }

  Status Deliver(const Alert& alert, std::stop_token stop) override {
    CurlPtr c(curl_easy_init());
    if (!c) return MakeError(ErrorCode::kInternal, "webhook: curl_easy_init failed");
    const std::string body = AlertToJson(alert);
    ListPtr headers(curl_slist_append(nullptr, "Content-Type: application/json"));
    curl_slist_append(headers.get(), "Expect:");
    curl_easy_setopt(c.get(), CURLOPT_URL, o_.url.c_str());
    curl_easy_setopt(c.get(), CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c.get(), CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c.get(), CURLOPT_HTTPHEADER, headers.get());
    curl_easy_setopt(c.get(), CURLOPT_USERAGENT, o_.user_agent.c_str());
    curl_easy_setopt(c.get(), CURLOPT_POSTFIELDS, body.c_str());
    curl_easy_setopt(c.get(), CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
    curl_easy_setopt(c.get(), CURLOPT_WRITEFUNCTION, DiscardBody);
    CommonOptions(c.get(), o_.timeout, &stop);
    const CURLcode rc = curl_easy_perform(c.get());
    if (rc != CURLE_OK) return TransportError(rc, "webhook");
    long status = 0;
    curl_easy_getinfo(c.get(), CURLINFO_RESPONSE_CODE, &status);
    if (status >= 200 && status < 300) return OkStatus();
    const bool again = status == 408 || status == 429 || status >= 500;
    return MakeError(again ? ErrorCode::kUnavailable : ErrorCode::kFailedPrecondition,
                     "webhook: HTTP " + std::to_string(status));
  }

 private:
  WebhookOptions o_;
};

class SmtpChannel final : public AlertChannel {
 public:
  explicit SmtpChannel(SmtpOptions o) : o_(std::move(o)) {}
  const char* Name() const override { return "email"; }

  Status Deliver(const Alert& alert, std::stop_token stop) override {
    if (o_.to.empty()) return MakeError(ErrorCode::kInvalidArgument, "email: no recipient");
    CurlPtr c(curl_easy_init());
    if (!c) return MakeError(ErrorCode::kInternal, "email: curl_easy_init failed");
    auto token = RandomHex(24);
    if (!token.ok()) return token.error();
    const std::string mail = BuildAlertMail(alert, o_.from, o_.to, *token);
    const std::string url = SmtpUrl(o_);
    const std::string from = "<" + o_.from + ">";
    curl_slist* recipients = nullptr;
    for (const auto& to : o_.to) {
      if (curl_slist* l = curl_slist_append(recipients, ("<" + to + ">").c_str())) recipients = l;
    }
    ListPtr rcpt(recipients);
    Upload upload{&mail};
    curl_easy_setopt(c.get(), CURLOPT_URL, url.c_str());
    curl_easy_setopt(c.get(), CURLOPT_PROTOCOLS_STR, o_.tls ? "smtps" : "smtp");
    // STARTTLS required (CURLUSESSL_ALL): libcurl fails with CURLE_USE_SSL_FAILED rather than
    // sending anything in clear to a server that does not offer it.
    curl_easy_setopt(c.get(), CURLOPT_USE_SSL,
                     static_cast<long>(o_.starttls ? CURLUSESSL_ALL : CURLUSESSL_NONE));
    if (!o_.username.empty()) {
      curl_easy_setopt(c.get(), CURLOPT_USERNAME, o_.username.c_str());
      curl_easy_setopt(c.get(), CURLOPT_PASSWORD, o_.password.c_str());
    }
    curl_easy_setopt(c.get(), CURLOPT_MAIL_FROM, from.c_str());
    curl_easy_setopt(c.get(), CURLOPT_MAIL_RCPT, rcpt.get());
    curl_easy_setopt(c.get(), CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(c.get(), CURLOPT_READFUNCTION, ReadUpload);
    curl_easy_setopt(c.get(), CURLOPT_READDATA, &upload);
    curl_easy_setopt(c.get(), CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(mail.size()));
    CommonOptions(c.get(), o_.timeout, &stop);
    const CURLcode rc = curl_easy_perform(c.get());
    switch (rc) {
      case CURLE_OK:
        return OkStatus();
      case CURLE_USE_SSL_FAILED:
        return MakeError(ErrorCode::kFailedPrecondition,
                         "email: the SMTP server does not offer STARTTLS, which "
                         "monitoring.alerts.smtp_starttls requires; nothing was sent");
      case CURLE_LOGIN_DENIED:
        return MakeError(ErrorCode::kPermissionDenied, "email: SMTP login refused");
      case CURLE_SSL_CACERT_BADFILE:
      case CURLE_PEER_FAILED_VERIFICATION:
        return MakeError(ErrorCode::kFailedPrecondition,
                         std::string("email: ") + curl_easy_strerror(rc));
      default:
        break;
    }
    long reply = 0;
    curl_easy_getinfo(c.get(), CURLINFO_RESPONSE_CODE, &reply);
    if (reply >= 500 && reply < 600) {  // a permanent refusal (recipient, sender, size)
      return MakeError(ErrorCode::kFailedPrecondition,
                       "email: SMTP server refused with " + std::to_string(reply));
    }
    return TransportError(rc, "email");
  }

 private:
  SmtpOptions o_;
};

class SendmailChannel final : public AlertChannel {
 public:
  SendmailChannel(SendmailOptions o, host::CommandRunner& runner)
      : o_(std::move(o)), runner_(runner) {}
  const char* Name() const override { return "email"; }

  Status Deliver(const Alert& alert, std::stop_token stop) override {
    if (o_.to.empty()) return MakeError(ErrorCode::kInvalidArgument, "email: no recipient");
    if (stop.stop_requested()) return MakeError(ErrorCode::kCancelled, "email: stopped");
    auto token = RandomHex(24);
    if (!token.ok()) return token.error();
    const std::string mail = BuildAlertMail(alert, o_.from, o_.to, *token);
    auto r = runner_.Run({o_.path, "-t", "-i"}, mail, o_.timeout);
    if (!r.ok()) {
      const ErrorCode code = r.error().code == ErrorCode::kDeadlineExceeded
                                 ? ErrorCode::kDeadlineExceeded
                                 : ErrorCode::kUnavailable;
      return MakeError(code, "email: " + o_.path + ": " + r.error().message);
    }
    if (r->exit_code == 0) return OkStatus();
    constexpr int kExTempFail = 75;  // sysexits.h: the MTA asks to try again later
    std::string out = r->output.substr(0, 200);
    std::replace(out.begin(), out.end(), '\n', ' ');
    return MakeError(
        r->exit_code == kExTempFail ? ErrorCode::kUnavailable : ErrorCode::kFailedPrecondition,
        "email: " + o_.path + " exited with " + std::to_string(r->exit_code) +
            (out.empty() ? "" : ": " + out));
  }

 private:
  SendmailOptions o_;
  host::CommandRunner& runner_;
};

std::string Base64(const std::string& in) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    const uint32_t v = (static_cast<uint8_t>(in[i]) << 16) |
                       (static_cast<uint8_t>(in[i + 1]) << 8) | static_cast<uint8_t>(in[i + 2]);
    for (int s = 18; s >= 0; s -= 6) out += kAlphabet[(v >> s) & 63];
  }
  if (i < in.size()) {
    uint32_t v = static_cast<uint8_t>(in[i]) << 16;
    if (i + 1 < in.size()) v |= static_cast<uint8_t>(in[i + 1]) << 8;
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += i + 1 < in.size() ? kAlphabet[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

// A header value: as is when printable ASCII, else one RFC 2047 encoded word.
std::string HeaderText(const std::string& s) {
  const bool ascii = std::all_of(s.begin(), s.end(), [](char ch) {
    return static_cast<unsigned char>(ch) >= 0x20 && static_cast<unsigned char>(ch) < 0x7f;
  });
  return ascii ? s : "=?UTF-8?B?" + Base64(s) + "?=";
}

std::string OneLine(std::string s) {
  std::replace(s.begin(), s.end(), '\r', ' ');
  std::replace(s.begin(), s.end(), '\n', ' ');
  return s;
}

std::string Number(double v) {
  std::ostringstream out;
  out << v;
  return out.str();
}

}  // namespace

std::unique_ptr<AlertChannel> MakeWebhookChannel(WebhookOptions options) {
  EnsureCurlGlobalInit();
  return std::make_unique<WebhookChannel>(std::move(options));
}

std::unique_ptr<AlertChannel> MakeSmtpChannel(SmtpOptions options) {
  EnsureCurlGlobalInit();
  return std::make_unique<SmtpChannel>(std::move(options));
}

std::unique_ptr<AlertChannel> MakeSendmailChannel(SendmailOptions options,
                                                  host::CommandRunner& runner) {
  return std::make_unique<SendmailChannel>(std::move(options), runner);
}

std::string SmtpUrl(const SmtpOptions& o) {
  const bool v6 = o.host.find(':') != std::string::npos && o.host.front() != '[';
  return std::string(o.tls ? "smtps://" : "smtp://") + (v6 ? "[" + o.host + "]" : o.host) + ":" +
         std::to_string(o.port);
}

std::vector<std::string> SplitAddresses(const std::string& list) {
  std::vector<std::string> out;
  std::string cur;
  auto flush = [&] {
    const size_t b = cur.find_first_not_of(" \t");
    const size_t e = cur.find_last_not_of(" \t");
    if (b != std::string::npos) out.push_back(cur.substr(b, e - b + 1));
    cur.clear();
  };
  for (char ch : list) {
    if (ch == ',' || ch == ';') {
      flush();
    } else {
      cur += ch;
    }
  }
  flush();
  return out;
}

std::string MailDate(SystemTime t) {
  const std::time_t secs = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  static constexpr const char* kDays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                            "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  char buf[64];
  std::snprintf(buf, sizeof buf, "%s, %02d %s %04d %02d:%02d:%02d +0000", kDays[tm.tm_wday],
                tm.tm_mday, kMonths[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
                tm.tm_sec);
  return buf;
}

std::string BuildAlertMail(const Alert& a, const std::string& from,
                           const std::vector<std::string>& to, const std::string& message_id) {
  std::string to_line;
  for (const auto& t : to) to_line += (to_line.empty() ? "" : ", ") + OneLine(t);
  const std::string domain = a.host.empty() ? "taolie-host-agent" : OneLine(a.host);
  std::string m;
  auto header = [&](const std::string& name, const std::string& value) {
    m += name + ": " + value + "\r\n";
  };
  header("Date", MailDate(a.at));
  header("From", OneLine(from));
  header("To", to_line);
  header("Subject", HeaderText(AlertSubject(a)));
  header("Message-ID", "<" + message_id + "@" + domain + ">");
  header("MIME-Version", "1.0");
  header("Content-Type", "text/plain; charset=utf-8");
  header("Content-Transfer-Encoding", "8bit");
  header("X-Taolie-Alert", OneLine(a.kind));
  m += "\r\n";
  auto line = [&](const std::string& name, const std::string& value) {
    if (!value.empty()) m += name + ": " + OneLine(value) + "\r\n";
  };
  m += OneLine(a.message) + "\r\n\r\n";
  line("kind", a.kind);
  line("severity", a.severity);
  line("state", a.state);
  line("host", a.host);
  line("agent_id", a.agent_id);
  line("gpu_uuid", a.gpu_uuid);
  if (a.gpu_index) line("gpu_index", std::to_string(*a.gpu_index));
  line("deployment_id", a.deployment_id);
  line("check", a.check);
  if (a.value) line("value", Number(*a.value));
  if (a.threshold) line("threshold", Number(*a.threshold));
  line("timestamp", FormatRfc3339(a.at));
  return m;
}

}  // namespace taolie::telemetry
