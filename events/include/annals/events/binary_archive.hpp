#pragma once

// annals' reader of binary payloads: cereal's portable binary format (what
// cereal::PortableBinaryOutputArchive writes), read from bytes in memory with every length checked
// against the bytes left.
//
//   annals::BinaryInputArchive in(payload);
//   event.serialize(in);
//   if (in.remaining() != 0) ...   // trailing bytes
//
// cereal's own PortableBinaryInputArchive resizes a string or container to the length its size
// prefix claims before reading it, so eight crafted bytes make it allocate up to 2^64 bytes. Here
// a size prefix larger than the bytes left throws cereal::Exception instead (every element of a
// string or container takes at least one byte; containers of empty classes are not supported).
// The first byte must be the format's endianness flag, 0 (big) or 1 (little).
//
// Thread-safety: an archive is used by one thread; the bytes must outlive it.

#include <cereal/archives/portable_binary.hpp>
#include <cereal/cereal.hpp>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>

namespace annals {

class BinaryInputArchive
    : public cereal::InputArchive<BinaryInputArchive, cereal::AllowEmptyClassElision> {
 public:
  explicit BinaryInputArchive(std::string_view bytes)
      : cereal::InputArchive<BinaryInputArchive, cereal::AllowEmptyClassElision>(this),
        bytes_(bytes) {
    if (bytes_.empty()) throw cereal::Exception("no bytes: not a portable binary archive");
    const auto flag = static_cast<std::uint8_t>(bytes_.front());
    if (flag > 1) {
      throw cereal::Exception("the first byte is " + std::to_string(flag) +
                              ", not a portable binary archive's endianness flag (0 or 1)");
    }
    bytes_.remove_prefix(1);
    swap_ = (flag == 1) != cereal::portable_binary_detail::is_little_endian();
  }

  // Copies `size` bytes into data, swapping each element_size-byte group when the archive's byte
  // order is not the host's. Throws cereal::Exception when fewer bytes are left.
  void loadBinary(void* data, std::size_t size, std::size_t element_size) {
    if (size > bytes_.size()) {
      throw cereal::Exception("a value of " + std::to_string(size) + " bytes runs past the end (" +
                              std::to_string(bytes_.size()) + " bytes left)");
    }
    if (size == 0) return;
    std::memcpy(data, bytes_.data(), size);
    bytes_.remove_prefix(size);
    if (swap_ && element_size > 1) {
      auto* p = static_cast<unsigned char*>(data);
      for (std::size_t i = 0; i + element_size <= size; i += element_size) {
        for (std::size_t a = i, b = i + element_size - 1; a < b; ++a, --b) std::swap(p[a], p[b]);
      }
    }
  }

  // Reads a size prefix: a count of elements of at least one byte each, so never more than the
  // bytes left.
  [[nodiscard]] std::uint64_t loadSize() {
    std::uint64_t n = 0;
    loadBinary(&n, sizeof n, sizeof n);
    if (n > bytes_.size()) {
      throw cereal::Exception("a length of " + std::to_string(n) + " runs past the end (" +
                              std::to_string(bytes_.size()) + " bytes left)");
    }
    return n;
  }

  [[nodiscard]] std::size_t remaining() const noexcept { return bytes_.size(); }

 private:
  std::string_view bytes_;
  bool swap_ = false;
};

template <class T>
requires std::is_arithmetic_v<T>
void CEREAL_LOAD_FUNCTION_NAME(BinaryInputArchive& ar, T& t) {
  static_assert(!std::is_floating_point_v<T> || std::numeric_limits<T>::is_iec559,
                "portable binary only supports IEEE 754 floating point");
  ar.loadBinary(std::addressof(t), sizeof(t), sizeof(t));
}

template <class T>
void CEREAL_SERIALIZE_FUNCTION_NAME(BinaryInputArchive& ar, cereal::NameValuePair<T>& t) {
  ar(t.value);
}

template <class T>
void CEREAL_LOAD_FUNCTION_NAME(BinaryInputArchive& ar, cereal::SizeTag<T>& t) {
  t.size = static_cast<std::remove_reference_t<T>>(ar.loadSize());
}

template <class T>
void CEREAL_LOAD_FUNCTION_NAME(BinaryInputArchive& ar, cereal::BinaryData<T>& bd) {
  using Element = std::remove_pointer_t<T>;
  static_assert(!std::is_floating_point_v<Element> || std::numeric_limits<Element>::is_iec559,
                "portable binary only supports IEEE 754 floating point");
  ar.loadBinary(bd.data, static_cast<std::size_t>(bd.size), sizeof(Element));
}

}  // namespace annals

CEREAL_REGISTER_ARCHIVE(annals::BinaryInputArchive)

// Only input -> output: PortableBinaryOutputArchive's input archive stays cereal's own.
namespace cereal::traits::detail {
template <>
struct get_output_from_input<annals::BinaryInputArchive> {
  using type = cereal::PortableBinaryOutputArchive;
};
}  // namespace cereal::traits::detail
