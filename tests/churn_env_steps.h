/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The churn fuzzer's steps on the container's surroundings: groups joining and leaving, the
 * vendor device closing, a misbehaving driver, remaps, forks; and the step dispatcher. Part of
 * tests/churn.h, which includes it.
 */
#ifndef CHURN_ENV_STEPS_H
#define CHURN_ENV_STEPS_H

static inline int ch_set_iommu(struct churn *c)
{
	long before = module_refcnt(c->module);
	int err = vfio_errno(ioctl(c->mc, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU));

	CH_CHECK(c, !err, "VFIO_SET_IOMMU: %s", strerror(err));
	CH_CHECK(c, module_refcnt(c->module) == before + 1,
		 "the container is not served by %s (refcnt %ld, was %ld)", c->module,
		 module_refcnt(c->module), before);
	c->S->iommu_set = 1;
	return 0;
}

static inline int ch_open_dm(struct churn *c)
{
	c->dm = ioctl(c->gm, VFIO_GROUP_GET_DEVICE_FD, c->vmdev);
	CH_CHECK(c, c->dm >= 0, "opening the vir_mdev device: %s", strerror(errno));
	c->S->dm_open = 1;
	return 0;
}

static inline void ch_close_dm(struct churn *c)
{
	close(c->dm);
	c->dm = -1;
	ch_model_dm_close(c->S);
}

/*
 * Whether a join of the edu group (an IOMMU domain replaying the mappings) is excluded: in the
 * differential when the model has a mapping of an exited process (6.12 type1 replays it with the
 * joining process's memory, current->mm, not the owner's); in the differential and with
 * avoid_taint when it would taint a mapping (a vendor pin of RAM where the memory is MMIO now).
 */
static inline int ch_join_excluded(struct churn *c)
{
	struct ch_shared *S = c->S;
	uint32_t p;
	int i;

	for (i = 0; i < CH_MAXMAP; i++) {
		struct ch_map *m = &S->map[i];

		if (!m->used)
			continue;
		if (c->diff && !S->alive[m->owner])
			return 1;
		for (p = m->ipage; p < m->ipage + m->npages && (c->diff || c->avoid_taint); p++)
			if (S->vref[p] && (S->kind[m->vpage + (p - m->ipage)] != K_RAM ||
					   S->vgen[p] != S->gen[m->vpage + (p - m->ipage)]))
				return 1;
	}
	return 0;
}

static inline int op_group(struct churn *c)
{
	struct ch_shared *S = c->S;
	int what = ch_r(c, 6), err, i, expect_ok = 1;
	uint32_t k;

	switch (what) {
	case 0:
	case 1:	/* G1, the edu group: join or leave */
		if (!S->g1_in) {
			if (S->iommu_set && ch_join_excluded(c))
				return 0;	/* excluded */
			for (i = 0; i < CH_MAXMAP; i++) {
				struct ch_map *m = &S->map[i];

				if (!m->used)
					continue;
				if (!S->alive[m->owner])
					expect_ok = 0;
				for (k = 0; k < m->npages; k++)
					if (S->kind[m->vpage + k] == K_HOLE)
						expect_ok = 0;
			}
			ch_note(c, "edu group joins%s", S->iommu_set ? "" : " (first group)");
			err = vfio_errno(ioctl(c->g1, VFIO_GROUP_SET_CONTAINER, &c->mc));
			ch_result(c, err);
			CH_CHECK(c, expect_ok ? !err : !!err, "%s: %s (a hole or a mapping of an exited process: must fail)",
				 c->what, strerror(err));
			if (err)
				return 0;
			S->g1_in = 1;
			if (!S->iommu_set)
				return ch_set_iommu(c);
			for (i = 0; i < CH_MAXMAP; i++) {
				struct ch_map *m = &S->map[i];

				if (!m->used)
					continue;
				ch_model_iommu_pin(S, m);
				for (k = 0; c->trace && k < m->npages; k++)
					if (S->tainted[m->ipage + k] && S->vref[m->ipage + k])
						ch_kmsg(c, "  taints IOVA %#llx: IOMMU pin of %s under a vendor pin of RAM (mapping %#llx +%u)\n",
							ch_iova(m->ipage + k),
							ch_kind_name[S->ikind[m->ipage + k]],
							ch_iova(m->ipage), m->npages);
			}
			return 0;
		}
		ch_note(c, "edu group leaves%s", S->gm_in ? "" : " (last group)");
		err = vfio_errno(ioctl(c->g1, VFIO_GROUP_UNSET_CONTAINER));
		ch_result(c, err);
		CH_CHECK(c, !err, "%s: %s", c->what, strerror(err));
		S->g1_in = 0;
		if (!S->gm_in)
			ch_model_release(S);
		else
			ch_dirty_scope_narrowed(S);
		for (i = 0; i < CH_MAXMAP; i++)
			S->map[i].iommu = 0;
		return 0;
	case 2:
	case 3:	/* GM, the vir_mdev group: join (and open the device) or leave */
		if (!S->gm_in) {
			ch_note(c, "vir_mdev group joins%s", S->iommu_set ? "" : " (first group)");
			err = vfio_errno(ioctl(c->gm, VFIO_GROUP_SET_CONTAINER, &c->mc));
			ch_result(c, err);
			CH_CHECK(c, !err, "%s: %s", c->what, strerror(err));
			S->gm_in = 1;
			if (!S->iommu_set && ch_set_iommu(c))
				return -1;
			return ch_r(c, 8) ? ch_open_dm(c) : 0;
		}
		ch_note(c, "vir_mdev group leaves%s%s", S->g1_in ? "" : " (last group)",
			S->dm_open ? " after closing its device" : "");
		if (S->dm_open)
			ch_close_dm(c);
		err = vfio_errno(ioctl(c->gm, VFIO_GROUP_UNSET_CONTAINER));
		ch_result(c, err);
		CH_CHECK(c, !err, "%s: %s", c->what, strerror(err));
		S->gm_in = 0;
		if (!S->g1_in)
			ch_model_release(S);
		return 0;
	default: /* the vir_mdev device: close (its pins go) and reopen */
		if (!S->gm_in)
			return 0;
		ch_note(c, "vir_mdev device %s", S->dm_open ? "closes and reopens" : "opens");
		if (S->dm_open)
			ch_close_dm(c);
		ch_result(c, 0);
		if (ch_check(c))
			return -1;
		return ch_open_dm(c);
	}
}

static inline int op_misbehave(struct churn *c)
{
	struct ch_shared *S = c->S;
	int v = ch_r(c, 4), err;

	if (!S->dm_open || c->diff)
		return 0;
	v = v == 3 ? 2 : v == 2 ? 1 : 0;
	ch_note(c, "vendor driver misbehaves: %d", v);
	err = ch_vmdev(c->dm, VIR_MDEV_MISBEHAVE, 0, 0, 0, v, NULL);
	ch_result(c, err);
	CH_CHECK(c, !err, "%s: %s", c->what, strerror(err));
	S->misbehave = v;
	return 0;
}

static inline int op_remap(struct churn *c)
{
	struct ch_shared *S = c->S;
	struct ch_map *m = ch_any_map(c);
	int how = ch_r(c, 10), shared = ch_r(c, 2);
	uint32_t vp, n;

	how = how < 3 ? R_ANON : how < 4 ? R_THP : how < 5 ? R_HUGE : how < 9 ? R_MMIO : R_HOLE;
	if (how == R_THP || how == R_HUGE) {
		vp = (m && ch_r(c, 2) ? m->vpage / CH_SLOT_PAGES : ch_r(c, CH_SLOTS)) * CH_SLOT_PAGES;
		n = CH_SLOT_PAGES;
	} else if (m && ch_r(c, 3)) {
		/* The memory behind (a part of) a mapping. */
		vp = m->vpage;
		n = m->npages;
		if (ch_r(c, 3) == 0) {
			vp += ch_r(c, n);
			n = 1 + ch_r(c, m->vpage + m->npages - vp);
		}
	} else {
		vp = ch_r(c, CH_ARENA_PAGES);
		n = 1 + ch_r(c, 64);
	}
	if (how == R_MMIO && n > (uint32_t)c->bar_pages)
		n = c->bar_pages;
	if (vp + n > CH_ARENA_PAGES)
		n = CH_ARENA_PAGES - vp;
	ch_note(c, "remap vaddr page %u +%u pages (was %s) as %s%s", vp, n,
		ch_kind_name[S->kind[vp]], ch_remap_name[how],
		how == R_HUGE ? (shared ? " shared" : " private") : "");
	if (ch_remap(c, vp, n, how, shared))
		return -1;
	ch_result(c, 0);
	return 0;
}

static int ch_step(struct churn *c, int op);

/* A fork child makes a few calls with the inherited fds, then exits (sometimes unmapping first). */
static inline int op_fork(struct churn *c)
{
	struct ch_shared *S = c->S;
	int id, status, i, n = 1 + ch_r(c, 6), tidy = ch_r(c, 2);
	unsigned long long child_seed = ch_rnd(c);
	pid_t pid;

	if (S->nown >= CH_MAXOWN || c->child)
		return 0;
	id = S->nown++;
	S->alive[id] = 1;
	ch_note(c, "fork: child %d makes %d calls%s", id, n, tidy ? " and unmaps its own" : "");
	fflush(stdout);
	pid = fork();
	CH_CHECK(c, pid >= 0, "fork: %s", strerror(errno));
	if (pid == 0) {
		static const int ops[] = { OP_MAP, OP_MAP, OP_UNMAP, OP_VPIN, OP_VPIN, OP_VUNPIN,
					   OP_VRW, OP_DIRTY };

		c->me = id;
		c->child = 1;
		c->rs = child_seed | 1;
		if (ch_check(c))
			_exit(1);
		for (i = 0; i < n && !S->failed; i++)
			if (ch_step(c, ops[ch_r(c, sizeof(ops) / sizeof(ops[0]))]))
				_exit(1);
		for (i = 0; tidy && i < CH_MAXMAP && !S->failed; i++) {
			struct ch_map *m = &S->map[i];
			long long want;
			__u64 size;
			int err;

			if (!m->used || m->owner != id)
				continue;
			want = ch_model_unmap(c, m->ipage, m->ipage + m->npages - 1, 0);
			if (want < 0)
				continue;
			ch_note(c, "unmap own iova %#llx +%u pages", ch_iova(m->ipage), m->npages);
			err = dma_unmap(c->mc, ch_iova(m->ipage), (__u64)m->npages * PAGE, 0, &size);
			ch_result(c, err);
			if (err) {
				ch_fail(c, __LINE__, "%s: %s", c->what, strerror(err));
				_exit(1);
			}
			ch_model_unmap(c, m->ipage, m->ipage + m->npages - 1, 1);
			if (ch_check_level(c, 2))
				_exit(1);
		}
		_exit(S->failed ? 1 : 0);
	}
	CH_CHECK(c, waitpid(pid, &status, 0) == pid, "waitpid: %s", strerror(errno));
	S->alive[id] = 0;
	ch_note(c, "fork: child %d exited (status %#x)", id, status);
	ch_result(c, 0);
	if (S->failed)
		return -1;
	CH_CHECK(c, WIFEXITED(status) && WEXITSTATUS(status) == 0, "fork child ended with status %#x",
		 status);
	return 0;
}

static const int ch_weight[OP_N] = {
	[OP_MAP] = 20, [OP_UNMAP] = 12, [OP_VPIN] = 16, [OP_VUNPIN] = 10, [OP_VRW] = 5,
	[OP_DIRTY] = 8, [OP_GROUP] = 8, [OP_REMAP] = 16, [OP_FORK] = 1, [OP_MISBEHAVE] = 1,
};

static int ch_step(struct churn *c, int op)
{
	struct ch_shared *S = c->S;
	int r, ok;

	double t0 = ch_now();

	c->noted = 0;
	switch (op) {
	case OP_MAP: r = op_map(c); break;
	case OP_UNMAP: r = op_unmap(c); break;
	case OP_VPIN: r = op_vpin(c); break;
	case OP_VUNPIN: r = op_vunpin(c); break;
	case OP_VRW: r = op_vrw(c); break;
	case OP_DIRTY: r = op_dirty(c); break;
	case OP_GROUP: r = op_group(c); break;
	case OP_REMAP: r = op_remap(c); break;
	case OP_FORK: r = op_fork(c); break;
	default: r = op_misbehave(c);
	}
	if (r)
		return r;
	if (!c->noted) {
		/* Not possible in this state, or excluded in differential mode. */
		S->skipped++;
		return 0;
	}
	ok = c->last_err == 0;
	S->t_op[op] += ch_now() - t0;
	S->ops[op]++;
	S->ops_ok[op] += ok;
	S->h_ok = ch_hash(S->h_ok, (uint64_t)(op << 1 | ok));
	S->steps++;
	c->seq_steps++;
	return ch_check_level(c, op == OP_VRW || op == OP_DIRTY || op == OP_REMAP ? 0 : 2);
}

#endif /* CHURN_ENV_STEPS_H */
