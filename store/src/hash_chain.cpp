// SHA-256 through OpenSSL's EVP interface (the low-level SHA256_* calls are deprecated in 3.0).

#include "annals/store/hash_chain.hpp"

#include <openssl/evp.h>

#include <cstring>
#include <memory>

#include "annals/events/printable.hpp"
#include "annals/store/purge.hpp"
#include "annals/store/sql_event_store.hpp"
#include "store_internal.hpp"

namespace annals {

namespace {

// Feeds the canonical encoding to a sink(const void*, size_t), piece by piece, so a large
// payload is hashed without being copied.
template <class Sink>
void encode(const RecordedEvent& e, Sink&& sink) {
  auto u64 = [&](std::uint64_t v) {
    unsigned char b[8];
    for (int i = 7; i >= 0; --i, v >>= 8) b[i] = static_cast<unsigned char>(v & 0xff);
    sink(b, sizeof b);
  };
  auto bytes = [&](std::string_view s) {
    u64(s.size());
    sink(s.data(), s.size());
  };
  u64(e.position);
  bytes(e.stream_id);
  u64(e.version);
  sink(e.event_id.data, e.event_id.size());
  bytes(e.type);
  u64(e.schema_version);
  const unsigned char format = e.payload_format == PayloadFormat::binary ? 1 : 0;
  sink(&format, 1);
  bytes(e.payload);
  bytes(e.metadata.tenant_id);
  bytes(e.metadata.actor);
  bytes(e.metadata.correlation_id);
  bytes(e.metadata.causation_id);
  u64(static_cast<std::uint64_t>(to_micros(e.metadata.occurred_at)));
  u64(static_cast<std::uint64_t>(to_micros(e.recorded_at)));
}

struct MdCtxFree {
  void operator()(EVP_MD_CTX* ctx) const noexcept { EVP_MD_CTX_free(ctx); }
};

// OpenSSL 3 looks SHA-256 up in its provider registry on every EVP_sha256() init (locks, a
// hash table, reference counts): fetched once, the lookup is gone. Never freed: it lives as
// long as the process, like OpenSSL's own tables.
const EVP_MD* sha256() {
  static const EVP_MD* const md = [] {
    EVP_MD* fetched = EVP_MD_fetch(nullptr, "SHA256", nullptr);
    if (fetched == nullptr) throw StoreError("SHA-256 through OpenSSL: EVP_MD_fetch failed", false);
    return fetched;
  }();
  return md;
}

// One digest context per thread, re-initialised per hash: allocating and freeing one per
// event cost more than hashing a small event.
EVP_MD_CTX* thread_context() {
  thread_local const std::unique_ptr<EVP_MD_CTX, MdCtxFree> ctx(EVP_MD_CTX_new());
  return ctx.get();
}

// Collects the canonical encoding's small pieces in a buffer so that OpenSSL sees a few
// large updates instead of about fifteen tiny ones; a piece too large for the buffer (a big
// payload) goes to the digest directly, uncopied.
class BufferedDigest {
 public:
  explicit BufferedDigest(EVP_MD_CTX* ctx) : ctx_(ctx) {}

  void update(const void* p, std::size_t n) {
    if (n > sizeof buffer_ - used_) {
      flush();
      if (n > sizeof buffer_) {
        ok_ = ok_ && EVP_DigestUpdate(ctx_, p, n) == 1;
        return;
      }
    }
    std::memcpy(buffer_ + used_, p, n);
    used_ += n;
  }

  bool finish(EventHash& out) {
    flush();
    unsigned int length = 0;
    ok_ = ok_ && EVP_DigestFinal_ex(ctx_, out.data(), &length) == 1 && length == out.size();
    return ok_;
  }

 private:
  void flush() {
    if (used_ > 0) ok_ = ok_ && EVP_DigestUpdate(ctx_, buffer_, used_) == 1;
    used_ = 0;
  }

  EVP_MD_CTX* ctx_;
  bool ok_ = true;
  std::size_t used_ = 0;
  unsigned char buffer_[1024];
};

}  // namespace

std::string canonical_encoding(const RecordedEvent& event) {
  std::string out;
  encode(event, [&](const void* p, std::size_t n) { out.append(static_cast<const char*>(p), n); });
  return out;
}

EventHash chain_hash(const EventHash& previous, const RecordedEvent& event) {
  EVP_MD_CTX* ctx = thread_context();
  if (ctx == nullptr || EVP_DigestInit_ex(ctx, sha256(), nullptr) != 1) {
    throw StoreError("SHA-256 through OpenSSL failed", false);
  }
  BufferedDigest digest(ctx);
  digest.update(previous.data(), previous.size());
  encode(event, [&](const void* p, std::size_t n) { digest.update(p, n); });
  EventHash out{};
  if (!digest.finish(out)) throw StoreError("SHA-256 through OpenSSL failed", false);
  return out;
}

LogVerification verify_log(const EventStore& store, std::size_t page_size) {
  if (page_size == 0) throw InvalidArgument("verify_log: page_size is 0");
  LogVerification v;
  const auto* sql_store = dynamic_cast<const SqlEventStore*>(&store);

  for (;;) {
    std::vector<RecordedEvent> page;
    try {
      page = store.read_all(v.head_position + 1, page_size);
    } catch (const IntegrityError& e) {
      // A row too damaged to read is where the chain breaks.
      throw IntegrityError(std::string("verify: ") + e.what(),
                           e.position() != 0 ? e.position() : v.head_position + 1);
    }
    if (page.empty()) {
      // The walk names a missing position precisely; this catches a record that lies about
      // how much its purge removed.
      if (sql_store != nullptr) {
        sql_store->read_transaction([](SqlSession& sql) { check_purge_records(sql); });
      }
      return v;
    }
    for (const RecordedEvent& e : page) {
      std::uint64_t expected = v.head_position + 1;
      if (e.position > expected && sql_store != nullptr) {
        // A gap a purge recorded: the chain goes on from the removed events' own hashes.
        std::vector<PurgedPosition> purged;
        sql_store->read_transaction(
            [&](SqlSession& sql) { purged = purged_positions(sql, expected, e.position - 1); });
        for (const PurgedPosition& p : purged) {
          if (p.position != expected) break;
          v.head_hash = p.hash;
          v.head_position = p.position;
          ++v.purged;
          ++expected;
        }
      }
      if (e.position != expected) {
        throw IntegrityError("verify: position " + std::to_string(expected) +
                                 " is missing (the next stored event is at position " +
                                 std::to_string(e.position) + ") and no purge recorded it",
                             expected);
      }
      const EventHash computed = chain_hash(v.head_hash, e);
      if (computed != e.hash) {
        throw IntegrityError("verify: the event at position " + std::to_string(e.position) +
                                 " (stream " + printable(e.stream_id, 1024) + ", version " +
                                 std::to_string(e.version) +
                                 ") does not match its hash: it was changed, inserted or moved "
                                 "(stored " +
                                 to_hex(e.hash) + ", computed " + to_hex(computed) + ")",
                             e.position);
      }
      v.head_hash = e.hash;
      v.head_position = e.position;
      ++v.events;
    }
  }
}

}  // namespace annals
