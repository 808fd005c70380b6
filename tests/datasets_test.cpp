// datasets: readers on generated fixtures, splits, statistics and the batch loader.
#include <gtest/gtest.h>
#include <hdf5.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <numeric>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <random>
#include <set>

#include "datasets/batch_loader.h"
#include "datasets/dataset.h"

namespace fs = std::filesystem;
using namespace adascale::data;

namespace {

using Bytes = std::vector<uint8_t>;

void write_bytes(const fs::path& path, const Bytes& bytes) {
  fs::create_directories(path.parent_path());
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
}

void write_gz(const fs::path& path, const Bytes& bytes) {
  fs::create_directories(path.parent_path());
  gzFile gz = gzopen(path.c_str(), "wb");
  ASSERT_NE(gz, nullptr);
  ASSERT_EQ(gzwrite(gz, bytes.data(), static_cast<unsigned>(bytes.size())),
            static_cast<int>(bytes.size()));
  ASSERT_EQ(gzclose(gz), Z_OK);
}

void put_be32(Bytes& b, uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) b.push_back(static_cast<uint8_t>(v >> s));
}

// image i, pixel k has value (i * 7 + k) % 256
Bytes idx_images(uint32_t n, uint32_t rows, uint32_t cols, uint32_t magic = 0x803) {
  Bytes b;
  put_be32(b, magic);
  put_be32(b, n);
  put_be32(b, rows);
  put_be32(b, cols);
  for (uint32_t i = 0; i < n; ++i)
    for (uint32_t k = 0; k < rows * cols; ++k) b.push_back(static_cast<uint8_t>((i * 7 + k) % 256));
  return b;
}

Bytes idx_labels(uint32_t n, uint32_t magic = 0x801) {
  Bytes b;
  put_be32(b, magic);
  put_be32(b, n);
  for (uint32_t i = 0; i < n; ++i) b.push_back(static_cast<uint8_t>(i % 3));
  return b;
}

// runs fn, expects a one-line DataError whose message contains `needle`
void expect_data_error(const std::function<void()>& fn, const std::string& needle) {
  try {
    fn();
    ADD_FAILURE() << "no DataError (expected one mentioning '" << needle << "')";
  } catch (const DataError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find(needle), std::string::npos) << what;
    EXPECT_EQ(what.find('\n'), std::string::npos) << what;
  }
}

class DatasetFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() / ("adascale_datasets_" + std::to_string(::getpid()) + "_" +
                                        info->test_suite_name() + "_" + info->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

// a set whose image i is filled with value i (so a batch tells which examples it holds)
std::shared_ptr<InMemoryDataset> indexed_set(int64_t n, ImageShape shape, int64_t classes = 4) {
  Bytes pixels;
  std::vector<int64_t> labels;
  for (int64_t i = 0; i < n; ++i) {
    pixels.insert(pixels.end(), static_cast<size_t>(shape.numel()), static_cast<uint8_t>(i));
    labels.push_back(i % classes);
  }
  std::vector<std::string> names;
  for (int64_t c = 0; c < classes; ++c) names.push_back("c" + std::to_string(c));
  return std::make_shared<InMemoryDataset>(shape, pixels, labels, names, "indexed");
}

std::shared_ptr<InMemoryDataset> random_set(int64_t n, ImageShape shape, uint64_t seed) {
  std::mt19937_64 rng(seed);
  Bytes pixels(static_cast<size_t>(n * shape.numel()));
  for (auto& p : pixels) p = static_cast<uint8_t>(rng());
  std::vector<int64_t> labels;
  for (int64_t i = 0; i < n; ++i) labels.push_back(static_cast<int64_t>(rng() % 3));
  return std::make_shared<InMemoryDataset>(shape, pixels, labels,
                                           std::vector<std::string>{"a", "b", "c"}, "random");
}

std::vector<Batch> drain(BatchLoader& loader, int64_t epoch) {
  loader.start_epoch(epoch);
  std::vector<Batch> out;
  while (auto b = loader.next()) out.push_back(std::move(*b));
  return out;
}

}  // namespace

// ---- IDX --------------------------------------------------------------------------------------

TEST_F(DatasetFiles, IdxReadsPlainAndGzip) {
  write_bytes(dir_ / "img", idx_images(5, 4, 3));
  write_bytes(dir_ / "lbl", idx_labels(5));
  write_gz(dir_ / "img.gz", idx_images(5, 4, 3));
  write_gz(dir_ / "lbl.gz", idx_labels(5));
  auto plain = read_idx((dir_ / "img").string(), (dir_ / "lbl").string());
  auto gz = read_idx((dir_ / "img.gz").string(), (dir_ / "lbl.gz").string(), {"x", "y", "z"});
  for (const auto& set : {plain, gz}) {
    ASSERT_EQ(set->size(), 5);
    EXPECT_EQ(set->shape().channels, 1);
    EXPECT_EQ(set->shape().height, 4);
    EXPECT_EQ(set->shape().width, 3);
    for (int64_t i = 0; i < 5; ++i) {
      EXPECT_EQ(set->label(i), i % 3);
      for (int64_t k = 0; k < 12; ++k) EXPECT_EQ(set->pixels(i)[k], (i * 7 + k) % 256);
    }
  }
  EXPECT_EQ(plain->num_classes(), 10);
  EXPECT_EQ(plain->class_names()[9], "9");
  EXPECT_EQ(gz->class_names(), (std::vector<std::string>{"x", "y", "z"}));
}

TEST_F(DatasetFiles, IdxErrorsNameTheFile) {
  write_gz(dir_ / "img.gz", idx_images(5, 4, 3));
  write_gz(dir_ / "lbl.gz", idx_labels(5));
  const std::string img = (dir_ / "img.gz").string(), lbl = (dir_ / "lbl.gz").string();

  const std::string missing = (dir_ / "missing.gz").string();
  expect_data_error([&] { read_idx(missing, lbl); }, missing);
  expect_data_error([&] { read_idx(img, (dir_ / "missing").string()); }, "missing");

  write_gz(dir_ / "magic.gz", idx_images(5, 4, 3, 0x801));
  expect_data_error([&] { read_idx((dir_ / "magic.gz").string(), lbl); },
                    "magic.gz: wrong IDX magic");
  write_bytes(dir_ / "lmagic", idx_labels(5, 0x803));
  expect_data_error([&] { read_idx(img, (dir_ / "lmagic").string()); }, "lmagic: wrong IDX magic");

  Bytes cut = idx_images(5, 4, 3);
  cut.resize(cut.size() - 5);
  write_bytes(dir_ / "short", cut);
  expect_data_error([&] { read_idx((dir_ / "short").string(), lbl); }, "short: truncated");
  write_bytes(dir_ / "tiny", Bytes{0, 0, 8});
  expect_data_error([&] { read_idx((dir_ / "tiny").string(), lbl); }, "tiny: truncated");

  write_gz(dir_ / "lbl4.gz", idx_labels(4));
  expect_data_error([&] { read_idx(img, (dir_ / "lbl4.gz").string()); }, "lbl4.gz: 4 labels for 5");

  // not gzip at all, and a gzip stream cut in half
  write_bytes(dir_ / "garbage.gz", idx_images(5, 4, 3));
  expect_data_error([&] { read_idx((dir_ / "garbage.gz").string(), lbl); }, "garbage.gz: bad gzip");
  Bytes gz_bytes;
  {
    std::ifstream in(img, std::ios::binary);
    gz_bytes.assign(std::istreambuf_iterator<char>(in), {});
  }
  gz_bytes.resize(gz_bytes.size() / 2);
  write_bytes(dir_ / "half.gz", gz_bytes);
  expect_data_error([&] { read_idx((dir_ / "half.gz").string(), lbl); }, "half.gz: bad gzip");
}

// a header that claims far more than the file holds is refused from the header alone, with the
// claim and the real size in the message, plain or gzipped
TEST_F(DatasetFiles, IdxHeaderClaimCheckedAgainstFile) {
  write_bytes(dir_ / "lbl", idx_labels(5));
  const std::string lbl = (dir_ / "lbl").string();
  Bytes claim;
  put_be32(claim, 0x803);
  put_be32(claim, 5000000);
  put_be32(claim, 28);
  put_be32(claim, 28);
  write_bytes(dir_ / "huge", claim);
  write_gz(dir_ / "huge.gz", claim);
  const std::string expected =
      "truncated: header claims 5000000 images of 28x28 = 3920000000 bytes, file has 0";
  expect_data_error([&] { read_idx((dir_ / "huge").string(), lbl); }, "huge: " + expected);
  expect_data_error([&] { read_idx((dir_ / "huge.gz").string(), lbl); }, "huge.gz: " + expected);
  // labels that claim more than they hold
  write_bytes(dir_ / "img", idx_images(5, 2, 2));
  Bytes short_labels;
  put_be32(short_labels, 0x801);
  put_be32(short_labels, 5);
  short_labels.push_back(1);
  write_bytes(dir_ / "short_lbl", short_labels);
  expect_data_error([&] { read_idx((dir_ / "img").string(), (dir_ / "short_lbl").string()); },
                    "short_lbl: truncated: header claims 5 labels = 5 bytes, file has 1");
  // bytes beyond the claim, plain and gzipped
  Bytes longer = idx_images(5, 2, 2);
  longer.push_back(0);
  longer.push_back(0);
  write_bytes(dir_ / "long", longer);
  write_gz(dir_ / "long.gz", longer);
  expect_data_error([&] { read_idx((dir_ / "long").string(), lbl); }, "long: 2 unexpected bytes");
  expect_data_error([&] { read_idx((dir_ / "long.gz").string(), lbl); },
                    "long.gz: 2 unexpected bytes");
  // a folder is not an IDX file
  fs::create_directories(dir_ / "adir");
  expect_data_error([&] { read_idx((dir_ / "adir").string(), lbl); }, "adir: not a regular file");
}

TEST_F(DatasetFiles, OpenDatasetMnistLayoutAndUnknownFormat) {
  write_gz(dir_ / "train-images-idx3-ubyte.gz", idx_images(6, 2, 2));
  write_gz(dir_ / "train-labels-idx1-ubyte.gz", idx_labels(6));
  write_bytes(dir_ / "t10k-images-idx3-ubyte", idx_images(2, 2, 2));  // plain files work too
  write_bytes(dir_ / "t10k-labels-idx1-ubyte", idx_labels(2));
  EXPECT_EQ(open_dataset({"mnist", dir_.string(), "train"})->size(), 6);
  EXPECT_EQ(open_dataset({"mnist", dir_.string(), "test"})->size(), 2);
  auto fm = open_dataset({"fashion-mnist", dir_.string(), "train"});
  EXPECT_EQ(fm->class_names()[0], "T-shirt/top");
  EXPECT_EQ(fm->class_names()[9], "Ankle boot");
  expect_data_error([&] { open_dataset({"imagenet", dir_.string(), "train"}); }, "'imagenet'");
  expect_data_error([&] { open_dataset({"mnist", dir_.string(), "val"}); }, "'val'");
  expect_data_error([&] { open_dataset({"mnist", "", "train"}); }, "mnist");
}

// ---- CIFAR ------------------------------------------------------------------------------------

namespace {
// record i: label(s), then 3072 pixels with value (i + k) % 251
Bytes cifar_records(int n, bool cifar100, int first = 0) {
  Bytes b;
  for (int i = first; i < first + n; ++i) {
    if (cifar100) b.push_back(static_cast<uint8_t>(i % 20));  // coarse
    b.push_back(static_cast<uint8_t>(cifar100 ? 50 + i : i % 10));
    for (int k = 0; k < 3072; ++k) b.push_back(static_cast<uint8_t>((i + k) % 251));
  }
  return b;
}
}  // namespace

TEST_F(DatasetFiles, CifarBinary) {
  write_bytes(dir_ / "a.bin", cifar_records(3, false));
  write_bytes(dir_ / "b.bin", cifar_records(2, false, 3));
  auto set = read_cifar_binary({(dir_ / "a.bin").string(), (dir_ / "b.bin").string()}, false);
  ASSERT_EQ(set->size(), 5);
  EXPECT_EQ(set->shape().channels, 3);
  EXPECT_EQ(set->shape().height, 32);
  EXPECT_EQ(set->num_classes(), 10);
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(set->label(i), i % 10);
    EXPECT_EQ(set->pixels(i)[0], i % 251);
    EXPECT_EQ(set->pixels(i)[3071], (i + 3071) % 251);
  }

  write_bytes(dir_ / "c100.bin", cifar_records(4, true));
  auto c100 = read_cifar_binary({(dir_ / "c100.bin").string()}, true);
  ASSERT_EQ(c100->size(), 4);
  EXPECT_EQ(c100->num_classes(), 100);
  EXPECT_EQ(c100->label(3), 53);  // the fine label, not the coarse one
  EXPECT_EQ(c100->pixels(2)[5], 7);

  Bytes cut = cifar_records(2, false);
  cut.pop_back();
  write_bytes(dir_ / "cut.bin", cut);
  expect_data_error([&] { read_cifar_binary({(dir_ / "cut.bin").string()}, false); },
                    "cut.bin: truncated CIFAR record");
  // a cifar-100 file read as cifar-10 does not divide into records either
  expect_data_error([&] { read_cifar_binary({(dir_ / "c100.bin").string()}, false); }, "c100.bin");
  expect_data_error([&] { read_cifar_binary({(dir_ / "none.bin").string()}, false); }, "none.bin");
}

// the size of a file to be read whole is known before reading: a folder (whose size the file
// system may report as anything) is refused by name instead of being allocated for
TEST_F(DatasetFiles, CifarRefusesNonRegularFiles) {
  fs::create_directories(dir_ / "batch.bin");
  expect_data_error([&] { read_cifar_binary({(dir_ / "batch.bin").string()}, false); },
                    "batch.bin: not a regular file");
}

TEST_F(DatasetFiles, OpenDatasetCifarLayouts) {
  for (int i = 1; i <= 5; ++i)
    write_bytes(dir_ / "c10" / ("data_batch_" + std::to_string(i) + ".bin"),
                cifar_records(2, false));
  write_bytes(dir_ / "c10" / "test_batch.bin", cifar_records(3, false));
  EXPECT_EQ(open_dataset({"cifar10", (dir_ / "c10").string(), "train"})->size(), 10);
  auto test = open_dataset({"cifar10", (dir_ / "c10").string(), "test"});
  EXPECT_EQ(test->size(), 3);
  EXPECT_EQ(test->class_names()[0], "airplane");
  write_bytes(dir_ / "c100" / "train.bin", cifar_records(4, true));
  write_bytes(dir_ / "c100" / "test.bin", cifar_records(1, true));
  auto c100 = open_dataset({"cifar100", (dir_ / "c100").string(), "train"});
  EXPECT_EQ(c100->size(), 4);
  EXPECT_EQ(c100->class_names().front(), "apple");
  EXPECT_EQ(c100->class_names().back(), "worm");
  fs::remove(dir_ / "c10" / "data_batch_4.bin");
  expect_data_error(
      [&] {
        open_dataset({"cifar10", (dir_ / "c10").string(), "train"});
      },
      "data_batch_4.bin");
}

// ---- image folders ----------------------------------------------------------------------------

TEST_F(DatasetFiles, ImageFolder) {
  // BGR (10, 20, 30) must come out as RGB planes 30, 20, 10
  cv::Mat bgr(4, 6, CV_8UC3, cv::Scalar(10, 20, 30));
  fs::create_directories(dir_ / "train" / "cat");
  fs::create_directories(dir_ / "train" / "dog");
  ASSERT_TRUE(cv::imwrite((dir_ / "train" / "cat" / "a.png").string(), bgr));
  ASSERT_TRUE(cv::imwrite((dir_ / "train" / "dog" / "b.png").string(), bgr * 2));
  ASSERT_TRUE(cv::imwrite((dir_ / "train" / "dog" / "c.png").string(), bgr * 3));
  write_bytes(dir_ / "train" / "dog" / ".hidden", Bytes{1, 2, 3});  // ignored

  auto set = read_image_folder((dir_ / "train").string(), 4, 6, 3);
  ASSERT_EQ(set->size(), 3);
  EXPECT_EQ(set->class_names(), (std::vector<std::string>{"cat", "dog"}));
  EXPECT_EQ(set->label(0), 0);
  EXPECT_EQ(set->label(2), 1);
  const uint8_t* p = set->pixels(1);
  EXPECT_EQ(p[0], 60);
  EXPECT_EQ(p[24], 40);
  EXPECT_EQ(p[48], 20);

  auto small = read_image_folder((dir_ / "train").string(), 2, 3, 1);
  EXPECT_EQ(small->shape().channels, 1);
  EXPECT_EQ(small->shape().height, 2);
  EXPECT_EQ(small->shape().width, 3);
  // open_dataset finds root/<split>; size and channels must be given, never a silent default
  auto opened = open_dataset({"folder", dir_.string(), "train", 32, 3});
  EXPECT_EQ(opened->shape().height, 32);
  EXPECT_EQ(opened->shape().channels, 3);
  expect_data_error(
      [&] {
        open_dataset({"folder", dir_.string(), "train"});
      },
      "needs image_size >= 1 and channels 1 or 3, got 0 and 0");

  write_bytes(dir_ / "train" / "dog" / "d.png", Bytes{0x89, 'P', 'N', 'G', 1, 2, 3, 4});
  expect_data_error([&] { read_image_folder((dir_ / "train").string(), 4, 6, 3); }, "d.png");
  fs::create_directories(dir_ / "empty");
  expect_data_error([&] { read_image_folder((dir_ / "empty").string(), 4, 6, 3); }, "empty");
  fs::create_directories(dir_ / "noimg" / "cls");
  expect_data_error([&] { read_image_folder((dir_ / "noimg").string(), 4, 6, 3); }, "cls");
}

TEST_F(DatasetFiles, ImageFolderSplitsMustExistAndNameTheSameClasses) {
  cv::Mat px(4, 4, CV_8UC3, cv::Scalar(1, 2, 3));
  const auto image = [&](const fs::path& p) {
    fs::create_directories(p.parent_path());
    ASSERT_TRUE(cv::imwrite(p.string(), px));
  };
  // train/{a,b} and test/{a,z}: the same class count, different classes
  image(dir_ / "set" / "train" / "a" / "1.png");
  image(dir_ / "set" / "train" / "b" / "1.png");
  image(dir_ / "set" / "test" / "a" / "1.png");
  image(dir_ / "set" / "test" / "z" / "1.png");
  const std::string set = (dir_ / "set").string();
  expect_data_error(
      [&] {
        open_dataset({"folder", set, "test", 8, 1});
      },
      set + ": class folder 'z' is in test but not in train");
  expect_data_error(
      [&] {
        open_dataset({"folder", set, "train", 8, 1});
      },
      set + ": class folder 'b' is in train but not in test");
  fs::rename(dir_ / "set" / "test" / "z", dir_ / "set" / "test" / "b");
  EXPECT_EQ(open_dataset({"folder", set, "test", 8, 1})->class_names(),
            (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(open_dataset({"folder", set, "train", 8, 1})->size(), 2);

  // class folders directly under the root: no silent reuse of the same images for both splits
  image(dir_ / "flat" / "a" / "1.png");
  image(dir_ / "flat" / "b" / "1.png");
  const std::string flat = (dir_ / "flat").string();
  expect_data_error([&] { open_dataset({"folder", flat, "train"}); }, flat + ": no 'train' folder");
  expect_data_error([&] { open_dataset({"folder", flat, "test"}); }, flat + ": no 'test' folder");

  // an image size no reader accepts is refused before any decoding
  expect_data_error([&] { read_image_folder((dir_ / "flat").string(), int64_t{1} << 40, 4, 3); },
                    "implausible image size");
}

// ---- HDF5 -------------------------------------------------------------------------------------

TEST_F(DatasetFiles, Hdf5RoundTrip) {
  for (int64_t channels : {1, 3}) {
    auto set = random_set(7, {channels, 5, 4}, 11);
    const std::string path = (dir_ / ("rt" + std::to_string(channels) + ".h5")).string();
    write_hdf5(*set, path);
    // no temporary sibling ("<name>.tmp.<pid>.<n>") is left behind
    for (const auto& entry : fs::directory_iterator(dir_))
      EXPECT_EQ(entry.path().filename().string().find(fs::path(path).filename().string() + "."),
                std::string::npos)
          << entry.path();
    auto back = read_hdf5(path);
    ASSERT_EQ(back->size(), 7);
    EXPECT_EQ(back->shape().channels, channels);
    EXPECT_EQ(back->shape().height, 5);
    EXPECT_EQ(back->shape().width, 4);
    EXPECT_EQ(back->class_names(), set->class_names());
    for (int64_t i = 0; i < 7; ++i) {
      EXPECT_EQ(back->label(i), set->label(i));
      EXPECT_TRUE(
          std::equal(set->pixels(i), set->pixels(i) + set->shape().numel(), back->pixels(i)));
    }
  }
  fs::create_directories(dir_ / "folder");
  write_hdf5(*random_set(3, {1, 2, 2}, 1), (dir_ / "folder" / "test.h5").string());
  EXPECT_EQ(open_dataset({"hdf5", (dir_ / "folder").string(), "test"})->size(), 3);
  EXPECT_EQ(open_dataset({"hdf5", (dir_ / "folder" / "test.h5").string(), "train"})->size(), 3);
}

TEST_F(DatasetFiles, Hdf5ForeignLayoutAndErrors) {
  // N x H x W images with int32 labels and no class_names, as another tool might write them
  const std::string path = (dir_ / "foreign.h5").string();
  {
    hid_t f = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    const hsize_t idims[3] = {2, 2, 3};
    hid_t is = H5Screate_simple(3, idims, nullptr);
    hid_t id = H5Dcreate2(f, "images", H5T_STD_U8LE, is, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    const uint8_t px[12] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};
    H5Dwrite(id, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, px);
    const hsize_t ldims[1] = {2};
    hid_t ls = H5Screate_simple(1, ldims, nullptr);
    hid_t ld = H5Dcreate2(f, "labels", H5T_STD_I32BE, ls, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    const int32_t lv[2] = {4, 1};
    H5Dwrite(ld, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, lv);
    H5Dclose(ld);
    H5Sclose(ls);
    H5Dclose(id);
    H5Sclose(is);
    H5Fclose(f);
  }
  auto set = read_hdf5(path);
  ASSERT_EQ(set->size(), 2);
  EXPECT_EQ(set->shape().channels, 1);
  EXPECT_EQ(set->label(0), 4);
  EXPECT_EQ(set->num_classes(), 5);
  EXPECT_EQ(set->pixels(1)[5], 11);

  write_bytes(dir_ / "garbage.h5", Bytes(4096, 0xab));
  expect_data_error([&] { read_hdf5((dir_ / "garbage.h5").string()); }, "garbage.h5");
  expect_data_error([&] { read_hdf5((dir_ / "absent.h5").string()); }, "absent.h5");
  // a valid HDF5 file without the expected datasets
  {
    hid_t f = H5Fcreate((dir_ / "bare.h5").c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    H5Fclose(f);
  }
  expect_data_error([&] { read_hdf5((dir_ / "bare.h5").string()); },
                    "bare.h5: no dataset 'images'");
  expect_data_error([&] { write_hdf5(*set, (dir_ / "no" / "such" / "dir.h5").string()); },
                    "dir.h5");
}

namespace {

// an HDF5 set whose `images` array has the given dims but no stored data (chunked, allocated
// incrementally, never filled, so a huge extent costs nothing on disk), with unwritten labels of
// the given count
void write_hdf5_claim(const fs::path& path, const std::vector<hsize_t>& dims, hsize_t labels) {
  hid_t f = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  ASSERT_GE(f, 0);
  hid_t is = H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr);
  ASSERT_GE(is, 0);
  hid_t plist = H5Pcreate(H5P_DATASET_CREATE);
  std::vector<hsize_t> chunk(dims.size(), 1);
  H5Pset_chunk(plist, static_cast<int>(chunk.size()), chunk.data());
  H5Pset_alloc_time(plist, H5D_ALLOC_TIME_INCR);
  H5Pset_fill_time(plist, H5D_FILL_TIME_NEVER);
  hid_t id = H5Dcreate2(f, "images", H5T_STD_U8LE, is, H5P_DEFAULT, plist, H5P_DEFAULT);
  ASSERT_GE(id, 0) << "HDF5 refused a chunked dataset of this extent";
  const hsize_t ldims[1] = {labels};
  hid_t ls = H5Screate_simple(1, ldims, nullptr);
  hid_t ld = H5Dcreate2(f, "labels", H5T_STD_I64LE, ls, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  ASSERT_GE(ld, 0);
  H5Dclose(ld);
  H5Sclose(ls);
  H5Dclose(id);
  H5Pclose(plist);
  H5Sclose(is);
  H5Fclose(f);
}

// a small, fully written set (1 x 2 x 2 images) with the given int64 labels and, when not empty,
// a `class_names` attribute
void write_hdf5_labels(const fs::path& path, const std::vector<int64_t>& labels,
                       const std::string& class_names) {
  hid_t f = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  ASSERT_GE(f, 0);
  const hsize_t idims[3] = {labels.size(), 2, 2};
  hid_t is = H5Screate_simple(3, idims, nullptr);
  hid_t id = H5Dcreate2(f, "images", H5T_STD_U8LE, is, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  const Bytes px(labels.size() * 4, 7);
  H5Dwrite(id, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, px.data());
  const hsize_t ldims[1] = {labels.size()};
  hid_t ls = H5Screate_simple(1, ldims, nullptr);
  hid_t ld = H5Dcreate2(f, "labels", H5T_STD_I64LE, ls, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  H5Dwrite(ld, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, labels.data());
  if (!class_names.empty()) {
    hid_t st = H5Tcopy(H5T_C_S1);
    H5Tset_size(st, class_names.size() + 1);
    hid_t as = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(ld, "class_names", st, as, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(a, st, class_names.c_str());
    H5Aclose(a);
    H5Sclose(as);
    H5Tclose(st);
  }
  H5Dclose(ld);
  H5Sclose(ls);
  H5Dclose(id);
  H5Sclose(is);
  H5Fclose(f);
}

}  // namespace

// image extents are bounded per dimension, their product is checked for overflow, and the file
// must store what the extent claims, all before anything is allocated
TEST_F(DatasetFiles, Hdf5ExtentsCheckedBeforeAllocation) {
  // N x H x W = 2^22 x 2^21 x 2^21 wraps to 0 in 64 bits: refused by the side bound
  const fs::path wrap = dir_ / "wrap.h5";
  write_hdf5_claim(wrap, {hsize_t{1} << 22, hsize_t{1} << 21, hsize_t{1} << 21}, 4);
  expect_data_error([&] { read_hdf5(wrap.string()); },
                    "wrap.h5: dataset 'images' dimension H (height) is 2097152 (limit 32768)");
  // 2^34 x 2^15 x 2^15 = 2^64, also 0 in 64 bits, with sides within the bound
  const fs::path overflow = dir_ / "overflow.h5";
  write_hdf5_claim(overflow, {hsize_t{1} << 34, hsize_t{1} << 15, hsize_t{1} << 15}, 4);
  expect_data_error([&] { read_hdf5(overflow.string()); },
                    "overflow.h5: dataset 'images' dimensions 17179869184 x 32768 x 32768 "
                    "overflows the 64-bit size range");
  const fs::path channels = dir_ / "channels.h5";
  write_hdf5_claim(channels, {2, 2, 2, 100000}, 2);
  expect_data_error([&] { read_hdf5(channels.string()); },
                    "channels.h5: dataset 'images' dimension C (channels) is 100000 (limit 64)");
  // no overflow, but 2^20 x 2^10 x 2^10 = 1 TiB claimed by a file of a few kilobytes
  const fs::path unstored = dir_ / "unstored.h5";
  write_hdf5_claim(unstored, {hsize_t{1} << 20, hsize_t{1} << 10, hsize_t{1} << 10},
                   hsize_t{1} << 20);
  expect_data_error([&] { read_hdf5(unstored.string()); },
                    "unstored.h5: dataset 'images' claims 1048576 x 1024 x 1024 = 1099511627776 "
                    "bytes but the file stores only 0 of its 1099511627776 chunks");
  // a contiguous array that was never written is refused the same way
  const fs::path unwritten = dir_ / "unwritten.h5";
  {
    hid_t f = H5Fcreate(unwritten.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    const hsize_t idims[3] = {1000, 100, 100};
    hid_t is = H5Screate_simple(3, idims, nullptr);
    hid_t id = H5Dcreate2(f, "images", H5T_STD_U8LE, is, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Dclose(id);
    H5Sclose(is);
    H5Fclose(f);
  }
  expect_data_error([&] { read_hdf5(unwritten.string()); },
                    "unwritten.h5: dataset 'images' claims 1000 x 100 x 100 = 10000000 bytes but "
                    "the file stores 0");
  // the in-memory set refuses a shape whose size overflows, whoever builds it
  expect_data_error(
      [&] {
        InMemoryDataset({int64_t{1} << 22, int64_t{1} << 21, int64_t{1} << 21}, Bytes{}, {0}, {"a"},
                        "shape");
      },
      "shape: image shape x examples");
}

// labels are range-checked before anything is sized by them
TEST_F(DatasetFiles, Hdf5LabelsCheckedBeforeAllocation) {
  const fs::path big = dir_ / "big_label.h5";
  write_hdf5_labels(big, {0, int64_t{1} << 40}, "");
  expect_data_error([&] { read_hdf5(big.string()); },
                    "big_label.h5: dataset 'labels': label 1099511627776 of example 1 exceeds the "
                    "limit of 100000 classes for a file without a 'class_names' attribute");
  const fs::path negative = dir_ / "negative.h5";
  write_hdf5_labels(negative, {0, -3}, "");
  expect_data_error([&] { read_hdf5(negative.string()); },
                    "negative.h5: dataset 'labels': label -3 of example 1 is negative");
  const fs::path named = dir_ / "named.h5";
  write_hdf5_labels(named, {1, 2}, "x,y");
  expect_data_error([&] { read_hdf5(named.string()); },
                    "named.h5: dataset 'labels': label 2 of example 1 is outside the 2 classes of "
                    "attribute 'class_names'");
  // the limit itself: the largest label a file without names may carry
  const fs::path edge = dir_ / "edge.h5";
  write_hdf5_labels(edge, {0, kMaxUnnamedClasses - 1}, "");
  EXPECT_EQ(read_hdf5(edge.string())->num_classes(), kMaxUnnamedClasses);
}

// train.h5 and test.h5 with class names must name the same classes in the same order
TEST_F(DatasetFiles, Hdf5SplitsMustNameTheSameClasses) {
  write_hdf5_labels(dir_ / "train.h5", {0, 1}, "a,b");
  write_hdf5_labels(dir_ / "test.h5", {0, 1}, "a,z");
  expect_data_error(
      [&] {
        open_dataset({"hdf5", dir_.string(), "test"});
      },
      dir_.string() + ": class 'z' is in test.h5 but not in train.h5");
  write_hdf5_labels(dir_ / "test.h5", {0, 1}, "b,a");
  expect_data_error(
      [&] {
        open_dataset({"hdf5", dir_.string(), "train"});
      },
      "class 'a' is class 0 in train.h5 but 'b' is in test.h5");
  write_hdf5_labels(dir_ / "test.h5", {1, 0}, "a,b");
  EXPECT_EQ(open_dataset({"hdf5", dir_.string(), "test"})->size(), 2);
  EXPECT_EQ(open_dataset({"hdf5", dir_.string(), "train"})->size(), 2);
}

// ---- splits and statistics --------------------------------------------------------------------

TEST(Splits, DeterministicDisjointComplete) {
  auto a = split_indices(101, 0.2, 5);
  auto b = split_indices(101, 0.2, 5);
  auto c = split_indices(101, 0.2, 6);
  EXPECT_EQ(a.train, b.train);
  EXPECT_EQ(a.validation, b.validation);
  EXPECT_NE(a.validation, c.validation);
  EXPECT_EQ(a.validation.size(), 20u);
  EXPECT_EQ(a.train.size(), 81u);
  std::vector<int64_t> all = a.train;
  all.insert(all.end(), a.validation.begin(), a.validation.end());
  std::sort(all.begin(), all.end());
  EXPECT_EQ(all, all_indices(101));
  EXPECT_TRUE(split_indices(10, 0.0, 1).validation.empty());
  EXPECT_EQ(split_indices(10, 1.0, 1).validation.size(), 10u);
  EXPECT_THROW(split_indices(10, 1.5, 1), DataError);
}

TEST(ChannelStats, KnownValues) {
  // channel 0: {0, 255} in both images -> mean 0.5, std 0.5
  // channel 1: all 51 in one image, all 102 in the other -> mean 0.3, std 0.1
  Bytes px = {0, 255, 51, 51, 0, 255, 102, 102};
  InMemoryDataset set({2, 1, 2}, px, {0, 1}, {"a", "b"}, "stats");
  auto s = channel_stats(set, {0, 1});
  ASSERT_EQ(s.mean.size(), 2u);
  EXPECT_NEAR(s.mean[0], 0.5, 1e-6);
  EXPECT_NEAR(s.std[0], 0.5, 1e-6);
  EXPECT_NEAR(s.mean[1], 0.3, 1e-6);
  EXPECT_NEAR(s.std[1], 0.1, 1e-6);
  auto one = channel_stats(set, {1});
  EXPECT_NEAR(one.mean[1], 0.4, 1e-6);
  EXPECT_NEAR(one.std[1], 0.0, 1e-6);
}

TEST(InMemory, ValidatesAndSubsets) {
  EXPECT_THROW(InMemoryDataset({1, 2, 2}, Bytes(7), {0, 0}, {"a"}, "x"), DataError);
  EXPECT_THROW(InMemoryDataset({1, 2, 2}, Bytes(8), {0, 1}, {"a"}, "x"), DataError);
  auto set = indexed_set(5, {1, 2, 2});
  auto sub = set->subset({4, 1});
  ASSERT_EQ(sub->size(), 2);
  EXPECT_EQ(sub->pixels(0)[3], 4);
  EXPECT_EQ(sub->label(1), 1);
  EXPECT_THROW(set->subset({5}), DataError);
}

// ---- BatchLoader ------------------------------------------------------------------------------

TEST(BatchLoader, SameBatchesForAnyWorkerCount) {
  auto set = random_set(37, {3, 8, 8}, 3);
  LoaderOptions o;
  o.batch_size = 5;
  o.augment = {2, true};
  o.normalize = {{0.4f, 0.5f, 0.6f}, {0.2f, 0.25f, 0.3f}};
  o.seed = 42;
  std::vector<std::vector<Batch>> runs;
  for (int workers : {0, 1, 2}) {
    o.workers = workers;
    o.prefetch = workers == 2 ? 1 : 3;
    BatchLoader loader(set, all_indices(37), o);
    EXPECT_EQ(loader.batches_per_epoch(), 8);
    runs.push_back(drain(loader, 3));
    // a restarted epoch reproduces itself
    auto again = drain(loader, 3);
    ASSERT_EQ(again.size(), runs.back().size());
    for (size_t b = 0; b < again.size(); ++b)
      EXPECT_TRUE(torch::equal(again[b].images, runs.back()[b].images));
  }
  for (size_t r = 1; r < runs.size(); ++r) {
    ASSERT_EQ(runs[r].size(), 8u);
    for (size_t b = 0; b < 8; ++b) {
      EXPECT_TRUE(torch::equal(runs[r][b].images, runs[0][b].images))
          << "run " << r << " batch " << b;
      EXPECT_TRUE(torch::equal(runs[r][b].labels, runs[0][b].labels));
    }
  }
  EXPECT_EQ(runs[0].back().images.size(0), 2);  // 37 = 7 * 5 + 2
  // another epoch gives another order
  o.workers = 2;
  BatchLoader loader(set, all_indices(37), o);
  auto other = drain(loader, 4);
  EXPECT_FALSE(torch::equal(other[0].images, runs[0][0].images));
}

TEST(BatchLoader, NormalizesPerChannel) {
  Bytes px = {0, 51, 102, 255, 10, 20, 30, 40};  // one image, 2 channels of 2x2
  auto set = std::make_shared<InMemoryDataset>(ImageShape{2, 2, 2}, px, std::vector<int64_t>{1},
                                               std::vector<std::string>{"a", "b"}, "norm");
  LoaderOptions o;
  o.shuffle = false;
  o.workers = 1;
  o.normalize = {{0.5f, 0.1f}, {0.25f, 0.2f}};
  BatchLoader loader(set, {0}, o);
  auto batches = drain(loader, 0);
  ASSERT_EQ(batches.size(), 1u);
  auto img = batches[0].images;
  ASSERT_EQ(img.sizes(), (torch::IntArrayRef{1, 2, 2, 2}));
  EXPECT_EQ(img.dtype(), torch::kFloat32);
  EXPECT_EQ(batches[0].labels.dtype(), torch::kInt64);
  EXPECT_EQ(batches[0].labels[0].item<int64_t>(), 1);
  const float* v = img.data_ptr<float>();
  for (int k = 0; k < 8; ++k) {
    const double mean = k < 4 ? 0.5 : 0.1, sd = k < 4 ? 0.25 : 0.2;
    EXPECT_NEAR(v[k], (px[k] / 255.0 - mean) / sd, 1e-5) << k;
  }
  o.normalize = {};
  BatchLoader scale_only(set, {0}, o);
  auto plain = drain(scale_only, 0);
  EXPECT_NEAR(plain[0].images.data_ptr<float>()[3], 1.0, 1e-6);
  o.normalize = {{0.5f}, {0.0f}};
  EXPECT_THROW(BatchLoader(set, {0}, o), DataError);
}

namespace {
// the output x, y of source image `src` (C x H x W) cropped at offset dy, dx after zero padding,
// then optionally mirrored; values in [0,1] units
std::vector<float> expected_view(const uint8_t* src, int64_t C, int64_t H, int64_t W, int64_t dy,
                                 int64_t dx, bool flip) {
  std::vector<float> out;
  for (int64_t c = 0; c < C; ++c)
    for (int64_t y = 0; y < H; ++y)
      for (int64_t x = 0; x < W; ++x) {
        const int64_t sy = y + dy, sx = (flip ? W - 1 - x : x) + dx;
        const bool inside = sy >= 0 && sy < H && sx >= 0 && sx < W;
        out.push_back(inside ? src[(c * H + sy) * W + sx] / 255.0f : 0.0f);
      }
  return out;
}
}  // namespace

TEST(BatchLoader, FlipMirrorsRows) {
  // 64 copies of one 1x2x3 image: each output must be the image or its mirror, and both occur
  Bytes one = {1, 2, 3, 4, 5, 6};
  Bytes px;
  for (int i = 0; i < 64; ++i) px.insert(px.end(), one.begin(), one.end());
  auto set = std::make_shared<InMemoryDataset>(ImageShape{1, 2, 3}, px, std::vector<int64_t>(64, 0),
                                               std::vector<std::string>{"a"}, "flip");
  LoaderOptions o;
  o.batch_size = 64;
  o.augment.horizontal_flip = true;
  o.workers = 0;
  BatchLoader loader(set, all_indices(64), o);
  auto b = drain(loader, 0);
  const std::vector<float> same = expected_view(one.data(), 1, 2, 3, 0, 0, false);
  const std::vector<float> mirror = expected_view(one.data(), 1, 2, 3, 0, 0, true);
  EXPECT_EQ(mirror[0] * 255.0f, 3.0f);
  EXPECT_EQ(mirror[5] * 255.0f, 4.0f);
  int flipped = 0;
  for (int i = 0; i < 64; ++i) {
    const float* v = b[0].images.data_ptr<float>() + i * 6;
    std::vector<float> got(v, v + 6);
    const bool is_same = got == same, is_mirror = got == mirror;
    EXPECT_TRUE(is_same || is_mirror) << i;
    flipped += is_mirror;
  }
  EXPECT_GT(flipped, 10);
  EXPECT_LT(flipped, 54);
}

TEST(BatchLoader, CropPadsWithZeroAndKeepsShape) {
  auto set = random_set(40, {3, 6, 5}, 9);
  LoaderOptions o;
  o.batch_size = 8;
  o.shuffle = false;
  o.workers = 2;
  o.normalize = {};
  BatchLoader plain(set, all_indices(40), o);
  o.augment = {2, true};
  BatchLoader augmented(set, all_indices(40), o);
  auto a = drain(plain, 0), b = drain(augmented, 0);
  ASSERT_EQ(a.size(), b.size());
  bool changed = false;
  for (size_t k = 0; k < a.size(); ++k) {
    ASSERT_EQ(a[k].images.sizes(), b[k].images.sizes());
    EXPECT_TRUE(torch::equal(a[k].labels, b[k].labels));
    changed |= !torch::equal(a[k].images, b[k].images);
    // every augmented image is one of the 5 x 5 x 2 crops/flips of its source
    for (int64_t i = 0; i < b[k].images.size(0); ++i) {
      const float* v = b[k].images.data_ptr<float>() + i * 90;
      const std::vector<float> got(v, v + 90);
      bool found = false;
      for (int64_t dy = -2; dy <= 2 && !found; ++dy)
        for (int64_t dx = -2; dx <= 2 && !found; ++dx)
          for (bool flip : {false, true})
            found |= got == expected_view(set->pixels(static_cast<int64_t>(k) * 8 + i), 3, 6, 5, dy,
                                          dx, flip);
      EXPECT_TRUE(found) << "batch " << k << " image " << i;
    }
  }
  EXPECT_TRUE(changed);
}

TEST(BatchLoader, EpochCoversEachIndexOnce) {
  auto set = indexed_set(50, {1, 2, 2});
  std::vector<int64_t> odd;
  for (int64_t i = 1; i < 50; i += 2) odd.push_back(i);
  for (bool drop_last : {false, true}) {
    LoaderOptions o;
    o.batch_size = 7;
    o.drop_last = drop_last;
    o.normalize = {};
    o.workers = 2;
    o.seed = 3;
    BatchLoader loader(set, odd, o);
    EXPECT_EQ(loader.examples(), 25);
    EXPECT_EQ(loader.batches_per_epoch(), drop_last ? 3 : 4);
    std::vector<int64_t> seen;
    for (auto& b : drain(loader, 1))
      for (int64_t i = 0; i < b.images.size(0); ++i) {
        const int64_t index = std::lround(b.images[i][0][0][0].item<float>() * 255.0f);
        EXPECT_EQ(b.labels[i].item<int64_t>(), index % 4);
        seen.push_back(index);
      }
    EXPECT_NE(seen, std::vector<int64_t>(odd.begin(), odd.begin() + seen.size()));  // shuffled
    std::sort(seen.begin(), seen.end());
    if (drop_last) {
      EXPECT_EQ(seen.size(), 21u);
      EXPECT_EQ(std::set<int64_t>(seen.begin(), seen.end()).size(), 21u);
    } else {
      EXPECT_EQ(seen, odd);
    }
    EXPECT_FALSE(loader.next().has_value());
  }
}

namespace {
// fails to hand out the pixels of one example, as a broken reader would
class FailingSet : public InMemoryDataset {
 public:
  FailingSet(const InMemoryDataset& base, int64_t bad)
      : InMemoryDataset(*base.subset(all_indices(base.size()))), bad_(bad) {}
  const uint8_t* pixels(int64_t i) const override {
    if (i == bad_) throw DataError("example " + std::to_string(i) + " is broken");
    return InMemoryDataset::pixels(i);
  }

 private:
  int64_t bad_;
};
}  // namespace

TEST(BatchLoader, WorkerErrorsReachNext) {
  auto base = indexed_set(30, {1, 2, 2});
  auto set = std::make_shared<FailingSet>(*base, 17);
  for (int workers : {0, 1, 2}) {
    LoaderOptions o;
    o.batch_size = 4;
    o.shuffle = false;
    o.workers = workers;
    o.prefetch = 2;
    BatchLoader loader(set, all_indices(30), o);
    loader.start_epoch(0);
    for (int b = 0; b < 4; ++b) EXPECT_TRUE(loader.next().has_value()) << b;  // 0..15 are fine
    expect_data_error([&] { loader.next(); }, "example 17 is broken");
    // the loader stays usable: a new epoch restarts cleanly
    loader.start_epoch(1);
    EXPECT_TRUE(loader.next().has_value());
  }
  // destroyed mid-epoch with workers blocked on a full ring: must not hang
  LoaderOptions o;
  o.batch_size = 1;
  o.workers = 2;
  o.prefetch = 1;
  BatchLoader loader(base, all_indices(30), o);
  loader.start_epoch(0);
  EXPECT_TRUE(loader.next().has_value());
  BatchLoader fresh(base, all_indices(30), o);
  EXPECT_THROW(fresh.next(), DataError);  // no start_epoch yet
  LoaderOptions bad = o;
  bad.batch_size = 0;
  EXPECT_THROW(BatchLoader(base, all_indices(30), bad), DataError);
  EXPECT_THROW(BatchLoader(base, {30}, o), DataError);
}

// ---- the real Fashion-MNIST test set ----------------------------------------------------------

TEST(FashionMnist, RealTestSet) {
  const fs::path root = default_fashion_mnist_root();
  if (!fs::exists(root / "t10k-images-idx3-ubyte.gz") ||
      !fs::exists(root / "t10k-labels-idx1-ubyte.gz"))
    GTEST_SKIP() << "Fashion-MNIST not installed under " << root;
  auto set = open_dataset({"fashion-mnist", "", "test"});
  ASSERT_EQ(set->size(), 10000);
  EXPECT_EQ(set->shape().channels, 1);
  EXPECT_EQ(set->shape().height, 28);
  EXPECT_EQ(set->shape().width, 28);
  ASSERT_EQ(set->num_classes(), 10);
  EXPECT_EQ(set->class_names()[0], "T-shirt/top");
  std::vector<int> counts(10, 0);
  for (int64_t i = 0; i < set->size(); ++i) ++counts[static_cast<size_t>(set->label(i))];
  for (int c : counts) EXPECT_EQ(c, 1000);  // the test set is balanced
  auto stats = channel_stats(*set, all_indices(set->size()));
  EXPECT_NEAR(stats.mean[0], 0.286, 0.01);
  EXPECT_NEAR(stats.std[0], 0.353, 0.01);
}
