#!/bin/bash
# go6: content+id SASRec (GRAM 1epoch, CCE) on the Beauty-shaped data of go5's part 2 (carried, gzipped), after the
# training-catalog fix (97e1790): the same program arguments as go5's content+id row, 7 epochs instead of 4.
set -u
W="$(ls .whl/*.whl)"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site-packages $W || exit 1
export PYTHONUNBUFFERED=1 PYTHONPATH=/tmp/site-packages:$PWD/.whl/site:$PWD/src
D=.gpu3/beauty
timeout -k 5 ${T:-175} python3 -m gram_hf.scripts.next_item --dataset amazon --reviews $D/reviews_Beauty_5.json.gz \
  --metadata $D/meta_Beauty.json.gz --dataset_cache_dir /tmp/dc --item_encoder content+id --item_dim 64 \
  --loss_type cce --max_length 50 --num_blocks 2 --num_heads 1 --head_dropout 0.2 --learning_rate 0.001 \
  --per_device_train_batch_size 128 --num_train_epochs 7 --early_stopping_patience 2 --seed 0 --output_dir /tmp/run6 \
  --save_total_limit 1 --report_to none --disable_tqdm true --logging_steps 1000000 --item_max_length 32 --bf16 \
  --gram_interval 1epoch --encoder_epochs 1 ${EXTRA:-} 2>&1 | grep --line-buffered -v -e Generating -e "examples/s" -e "Loading weights" -e "Writing model" -e "Tokenizing" | tee $OUT/run6.log
cp /tmp/run6/results.json $OUT/results6.json 2>/dev/null
cp /tmp/run6/trainer_state.json $OUT/trainer_state6.json 2>/dev/null
ls /tmp/run6/checkpoint-*/trainer_state.json 2>/dev/null | head -1 | xargs -r -I{} cp {} $OUT/checkpoint_state6.json
echo done
