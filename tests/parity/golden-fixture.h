/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* tests/parity: the denoiser on the golden fusion_dit weights and the
 * sampler case's text embeddings, as a GTest fixture, for the denoiser
 * tests that run the golden model (test-denoiser.c, test-few-step.c). */
#pragma once

#include "ovi-test-util.h"

typedef struct {
  OviTestGolden golden;
  OviDenoiser *d;
} Fixture;

static void
fixture_setup (Fixture *f, gconstpointer data)
{
  g_autoptr (GError) error = NULL;

  ovi_test_golden_init (&f->golden);
  f->d = ovi_denoiser_new (&f->golden.paths, f->golden.be, &error);
  g_assert_no_error (error);
}

static void
fixture_teardown (Fixture *f, gconstpointer data)
{
  ovi_denoiser_free (f->d);
  ovi_test_golden_clear (&f->golden);
}
