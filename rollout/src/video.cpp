#include "npe/rollout/video.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <memory>

#include <cairo.h>
#include <fmt/format.h>
#include <unistd.h>

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/imgutils.h>
#include <libavutil/opt.h>
#include <libswscale/swscale.h>
}

#include "npe/core/interrupt.h"
#include "npe/core/io.h"

namespace npe::rollout {
namespace fs = std::filesystem;

namespace {
std::string av_err(int code) {
  char buf[AV_ERROR_MAX_STRING_SIZE] = {0};
  av_strerror(code, buf, sizeof buf);
  return buf;
}
}  // namespace

struct VideoWriter::Impl {
  std::string path, tmp;
  std::unique_ptr<TempOutput> out;  // the MP4 is written to out->temp(), renamed when closed
  int width = 0, height = 0;
  AVFormatContext* fmt = nullptr;
  AVCodecContext* enc = nullptr;
  AVStream* stream = nullptr;
  AVFrame* frame = nullptr;
  AVPacket* pkt = nullptr;
  SwsContext* sws = nullptr;
  int64_t next_pts = 0;
  bool closed = false;

  void check(int ret, const char* what) {
    if (ret < 0) throw Error(fmt::format("video '{}': {} failed: {}", path, what, av_err(ret)));
  }
  void drain(bool flush) {
    check(avcodec_send_frame(enc, flush ? nullptr : frame), "encoding a frame");
    for (;;) {
      int ret = avcodec_receive_packet(enc, pkt);
      if (ret == AVERROR(EAGAIN) || ret == AVERROR_EOF) break;
      check(ret, "receiving a packet");
      // Each frame lasts one tick; without a duration the MP4 edit list ends at the last
      // frame's start and demuxers discard that frame.
      if (pkt->duration <= 0) pkt->duration = 1;
      av_packet_rescale_ts(pkt, enc->time_base, stream->time_base);
      pkt->stream_index = stream->index;
      check(av_interleaved_write_frame(fmt, pkt), "writing a packet");
    }
  }
  void release() {
    if (sws) sws_freeContext(sws);
    if (frame) av_frame_free(&frame);
    if (pkt) av_packet_free(&pkt);
    if (enc) avcodec_free_context(&enc);
    if (fmt) {
      if (fmt->pb) avio_closep(&fmt->pb);
      avformat_free_context(fmt);
    }
    sws = nullptr;
    fmt = nullptr;
  }
};

VideoWriter::VideoWriter(const std::string& path, int width, int height, int fps) : impl_(new Impl) {
  Impl& v = *impl_;
  v.path = path;
  v.width = width;
  v.height = height;
  if (width <= 0 || height <= 0 || width % 2 || height % 2)
    throw Error(fmt::format("video '{}': frame size {}x{} must be positive and even (yuv420p)", path, width, height));
  v.out = std::make_unique<TempOutput>(path);  // refuses a device or FIFO target; removed unless closed
  av_log_set_level(AV_LOG_ERROR);              // no per-file encoder statistics on stderr
  v.tmp = v.out->temp().string();
  try {
    v.check(avformat_alloc_output_context2(&v.fmt, nullptr, "mp4", v.tmp.c_str()), "creating the MP4 container");
    const AVCodec* codec = avcodec_find_encoder_by_name("libx264");
    if (!codec) codec = avcodec_find_encoder(AV_CODEC_ID_H264);
    if (!codec) throw Error(fmt::format("video '{}': this FFmpeg has no H.264 encoder", path));
    v.stream = avformat_new_stream(v.fmt, nullptr);
    v.enc = avcodec_alloc_context3(codec);
    v.enc->width = width;
    v.enc->height = height;
    v.enc->time_base = AVRational{1, fps};
    v.enc->framerate = AVRational{fps, 1};
    v.enc->pix_fmt = AV_PIX_FMT_YUV420P;
    v.enc->gop_size = 2 * fps;
    v.enc->max_b_frames = 0;  // no B-frames: no edit list, every frame decodes back
    v.enc->thread_count = 1;  // same input, same bytes
    if (v.fmt->oformat->flags & AVFMT_GLOBALHEADER) v.enc->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
    av_opt_set(v.enc->priv_data, "preset", "medium", 0);
    av_opt_set(v.enc->priv_data, "crf", "20", 0);
    v.check(avcodec_open2(v.enc, codec, nullptr), "opening the H.264 encoder");
    v.check(avcodec_parameters_from_context(v.stream->codecpar, v.enc), "setting stream parameters");
    v.stream->time_base = v.enc->time_base;
    v.check(avio_open(&v.fmt->pb, v.tmp.c_str(), AVIO_FLAG_WRITE), "opening the output file");
    v.check(avformat_write_header(v.fmt, nullptr), "writing the MP4 header");
    v.frame = av_frame_alloc();
    v.frame->format = AV_PIX_FMT_YUV420P;
    v.frame->width = width;
    v.frame->height = height;
    v.check(av_frame_get_buffer(v.frame, 0), "allocating a frame");
    v.pkt = av_packet_alloc();
    v.sws = sws_getContext(width, height, AV_PIX_FMT_BGRA, width, height, AV_PIX_FMT_YUV420P, SWS_BILINEAR, nullptr,
                           nullptr, nullptr);
    if (!v.sws) throw Error(fmt::format("video '{}': cannot create the colour converter", path));
  } catch (...) {
    v.release();
    v.out.reset();
    throw;
  }
}

void VideoWriter::write_frame(const uint8_t* bgra, int stride) {
  Impl& v = *impl_;
  v.check(av_frame_make_writable(v.frame), "making a frame writable");
  const uint8_t* src[1] = {bgra};
  const int src_stride[1] = {stride};
  sws_scale(v.sws, src, src_stride, 0, v.height, v.frame->data, v.frame->linesize);
  v.frame->pts = v.next_pts++;
  v.drain(false);
}

void VideoWriter::close() {
  Impl& v = *impl_;
  if (v.closed) return;
  v.drain(true);
  v.check(av_write_trailer(v.fmt), "writing the MP4 trailer");
  v.release();
  v.closed = true;
  v.out->commit();
}

VideoWriter::~VideoWriter() {
  if (impl_ && !impl_->closed) {
    impl_->release();
    impl_->out.reset();  // removes the temporary MP4
  }
}

std::pair<int, int> write_comparison_video(const std::string& path, const std::vector<VideoPanel>& panels, int frames,
                                           const VideoOptions& o) {
  if (panels.empty()) throw Error("comparison video: no panels to draw");
  for (const VideoPanel& p : panels)
    if (p.traj->timesteps < frames || p.scene >= p.traj->scenes)
      throw Error(
          fmt::format("comparison video: panel '{}' has {} frames, {} needed", p.title, p.traj->timesteps, frames));
  const int margin = 10, header = 34;
  const int box_w = static_cast<int>(std::lround(o.box_width * o.scale));
  const int box_h = static_cast<int>(std::lround(o.box_height * o.scale));
  const int panel_w = box_w + 2 * margin;
  int width = panel_w * static_cast<int>(panels.size());
  int height = box_h + header + 2 * margin;
  width += width % 2;
  height += height % 2;

  // cairo objects owned by unique_ptrs so that every error path releases them
  std::unique_ptr<cairo_surface_t, decltype(&cairo_surface_destroy)> surface_owner(
      cairo_image_surface_create(CAIRO_FORMAT_ARGB32, width, height), &cairo_surface_destroy);
  cairo_surface_t* surface = surface_owner.get();
  if (cairo_surface_status(surface) != CAIRO_STATUS_SUCCESS)
    throw Error(fmt::format("video '{}': cannot draw frames of {}x{} px: {} (use a smaller world or scale)", path,
                            width, height, cairo_status_to_string(cairo_surface_status(surface))));
  std::unique_ptr<cairo_t, decltype(&cairo_destroy)> cr_owner(cairo_create(surface), &cairo_destroy);
  cairo_t* cr = cr_owner.get();
  VideoWriter writer(path, width, height, o.fps);
  for (int t = 0; t < frames; ++t) {
    // SIGINT/SIGTERM: stop; the writer's destructor removes the unfinished MP4
    throw_if_interrupted(fmt::format("stopped at frame {} of {}; '{}' not written", t, frames, path));
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_paint(cr);
    for (size_t k = 0; k < panels.size(); ++k) {
      const VideoPanel& p = panels[k];
      const double ox = k * panel_w + margin, oy = header + margin;
      cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_BOLD);
      cairo_set_font_size(cr, 16);
      cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
      cairo_move_to(cr, ox, 22);
      cairo_show_text(cr, p.title.c_str());
      if (k == 0) {
        const std::string counter = fmt::format("step {}/{}", t, frames - 1);
        cairo_text_extents_t ext;
        cairo_set_font_size(cr, 14);
        cairo_text_extents(cr, counter.c_str(), &ext);
        cairo_move_to(cr, ox + box_w - ext.x_advance, 22);
        cairo_show_text(cr, counter.c_str());
      }
      // box (world y up -> image y down)
      cairo_set_line_width(cr, 2);
      cairo_rectangle(cr, ox, oy, box_w, box_h);
      cairo_stroke(cr);
      // obstacles: world px -> panel px (y up)
      cairo_save(cr);
      cairo_rectangle(cr, ox, oy, box_w, box_h);
      cairo_clip(cr);
      for (const datagen::Obstacle& ob : o.obstacles) {
        auto px = [&](double x) { return ox + x * o.scale; };
        auto py = [&](double y) { return oy + box_h - y * o.scale; };
        if (ob.kind == datagen::Obstacle::Kind::kCapsule) {
          // a segment stroked with round caps of width 2 r is exactly the capsule
          cairo_move_to(cr, px(ob.ax), py(ob.ay));
          cairo_line_to(cr, px(ob.bx), py(ob.by));
          cairo_set_line_cap(cr, CAIRO_LINE_CAP_ROUND);
          cairo_set_line_width(cr, 2 * ob.radius * o.scale);
          cairo_set_source_rgb(cr, 0.55, 0.55, 0.55);
          cairo_stroke(cr);
          cairo_set_line_cap(cr, CAIRO_LINE_CAP_BUTT);
        } else {
          cairo_save(cr);
          cairo_translate(cr, px(ob.ax), py(ob.ay));
          cairo_rotate(cr, -ob.angle);  // counter-clockwise in the world = clockwise on screen
          cairo_rectangle(cr, -ob.bx * o.scale, -ob.by * o.scale, 2 * ob.bx * o.scale, 2 * ob.by * o.scale);
          cairo_restore(cr);
          cairo_set_source_rgb(cr, 0.55, 0.55, 0.55);
          cairo_fill(cr);
        }
      }
      // rings (goals): green outlines
      for (const auto& [rx, ry, rr] : p.rings) {
        cairo_new_sub_path(cr);
        cairo_arc(cr, ox + rx * o.scale, oy + box_h - ry * o.scale, rr * o.scale, 0, 2 * M_PI);
        cairo_set_source_rgb(cr, 0.1, 0.6, 0.2);
        cairo_set_line_width(cr, 2);
        cairo_stroke(cr);
      }
      cairo_restore(cr);
      const float* f = p.traj->frame(p.scene, t);
      for (int64_t b = 0; b < p.traj->num_balls; ++b) {
        const float* s = f + b * datagen::kStateDim;
        if (!(s[4] > 0)) continue;  // an absent slot (mixed ball counts)
        const double x = ox + s[0] * o.pos_scale * o.scale;
        const double y = oy + box_h - s[1] * o.pos_scale * o.scale;
        const double shade = 0.85 -
                             0.7 * std::log(std::max(1.0, double(s[4]))) / std::log(std::max(1.0001, o.max_mass));
        cairo_save(cr);
        cairo_rectangle(cr, ox, oy, box_w, box_h);
        cairo_clip(cr);
        cairo_arc(cr, x, y, o.radius * o.scale, 0, 2 * M_PI);
        cairo_set_source_rgb(cr, shade * 0.55, shade * 0.7, std::min(1.0, shade * 1.15));
        cairo_fill_preserve(cr);
        cairo_set_source_rgb(cr, 0.1, 0.1, 0.2);
        cairo_set_line_width(cr, 1.5);
        cairo_stroke(cr);
        cairo_restore(cr);
      }
    }
    cairo_surface_flush(surface);
    writer.write_frame(cairo_image_surface_get_data(surface), cairo_image_surface_get_stride(surface));
  }
  writer.close();
  return {width, height};
}

VideoInfo probe_video(const std::string& path) {
  AVFormatContext* fmt = nullptr;
  if (int ret = avformat_open_input(&fmt, path.c_str(), nullptr, nullptr); ret < 0)
    throw Error(fmt::format("video '{}': cannot open: {}", path, av_err(ret)));
  VideoInfo info;
  AVCodecContext* dec = nullptr;
  AVPacket* pkt = av_packet_alloc();
  AVFrame* frame = av_frame_alloc();
  try {
    if (avformat_find_stream_info(fmt, nullptr) < 0) throw Error(fmt::format("video '{}': no stream info", path));
    const AVCodec* codec = nullptr;
    const int si = av_find_best_stream(fmt, AVMEDIA_TYPE_VIDEO, -1, -1, &codec, 0);
    if (si < 0 || !codec) throw Error(fmt::format("video '{}': no decodable video stream", path));
    dec = avcodec_alloc_context3(codec);
    avcodec_parameters_to_context(dec, fmt->streams[si]->codecpar);
    if (avcodec_open2(dec, codec, nullptr) < 0) throw Error(fmt::format("video '{}': cannot open decoder", path));
    info.codec = codec->name;
    auto receive = [&] {
      while (avcodec_receive_frame(dec, frame) == 0) {
        ++info.frames;
        info.width = frame->width;
        info.height = frame->height;
        const char* pf = av_get_pix_fmt_name(static_cast<AVPixelFormat>(frame->format));
        info.pix_fmt = pf ? pf : "?";
      }
    };
    while (av_read_frame(fmt, pkt) >= 0) {
      if (pkt->stream_index == si && avcodec_send_packet(dec, pkt) >= 0) receive();
      av_packet_unref(pkt);
    }
    avcodec_send_packet(dec, nullptr);
    receive();
  } catch (...) {
    av_frame_free(&frame);
    av_packet_free(&pkt);
    avcodec_free_context(&dec);
    avformat_close_input(&fmt);
    throw;
  }
  av_frame_free(&frame);
  av_packet_free(&pkt);
  avcodec_free_context(&dec);
  avformat_close_input(&fmt);
  return info;
}

}  // namespace npe::rollout
