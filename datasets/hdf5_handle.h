// H5Handle: owns one HDF5 identifier and closes it with the matching H5?close on scope exit, so
// every early throw releases what was opened. Shared by the dataset reader/writer and the
// checkpoint code; include it only where the HDF5 headers are on the include path.
#pragma once

#include <hdf5.h>

namespace adascale {

class H5Handle {
 public:
  H5Handle(hid_t id, herr_t (*close)(hid_t)) : id_(id), close_(close) {}
  ~H5Handle() {
    if (id_ >= 0) close_(id_);
  }
  H5Handle(const H5Handle&) = delete;
  H5Handle& operator=(const H5Handle&) = delete;
  hid_t get() const { return id_; }
  operator hid_t() const { return id_; }
  bool ok() const { return id_ >= 0; }
  // closes now and reports whether that worked (a file close flushes, so it can fail)
  bool close() {
    const herr_t r = id_ >= 0 ? close_(id_) : 0;
    id_ = -1;
    return r >= 0;
  }

 private:
  hid_t id_;
  herr_t (*close_)(hid_t);
};

}  // namespace adascale
